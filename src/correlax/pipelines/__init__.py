"""The application layer: whole runs (explain a folder, play the Pointing Game over a split) built from the
method (correlax.explain), the readers, the evaluation and the report. The CLI and the demo call these."""
