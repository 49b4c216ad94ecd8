"""Scoring: crop-level classification metrics, the Pointing Game (two protocols), cross-validation statistics."""
