"""The package's layers: reading → pre-processing → crops → model → explanation → evaluation → report,
with the application layer and the CLI on top. A module imports only from its own layer or below."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "correlax"
# bottom to top; modules directly under correlax/ (errors, fileio, labels, settings, geometry) are the floor
LAYERS = ["", "io", "data", "preprocess", "crops", "models", "evaluation", "training", "explain", "report",
          "pipelines", "demo", "cli", "__main__"]  # fmt: skip


def layer_of(module: str) -> str:
    parts = module.split(".")
    name = parts[1] if len(parts) > 1 else ""
    return name if name in LAYERS else ""


def imports() -> list[tuple[str, str, int]]:
    """(importing module, imported module, line) for every import of correlax inside the package."""
    found = []
    for path in SRC.rglob("*.py"):
        module = ".".join(("correlax", *path.relative_to(SRC).with_suffix("").parts))
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            found += [(module, n, node.lineno) for n in names if n.startswith("correlax")]
    return found


def test_no_package_imports_upward():
    upward = [
        f"{src}:{line} imports {dst}"
        for src, dst, line in imports()
        if LAYERS.index(layer_of(dst)) > LAYERS.index(layer_of(src))
    ]
    assert not upward, "\n".join(upward)


def test_the_method_does_not_read_files():
    leaks = [f"{s}:{line} imports {d}" for s, d, line in imports()
             if layer_of(s) == "explain" and layer_of(d) in ("io", "data", "cli", "pipelines")]  # fmt: skip
    assert not leaks, "\n".join(leaks)


def test_no_two_modules_import_each_other():
    """A pair importing each other (even inside a function) is one module cut in two, or a name in the wrong place."""
    edges = {(src, dst) for src, dst, _ in imports()}
    pairs = sorted(f"{a} <-> {b}" for a, b in edges if a < b and (b, a) in edges)
    assert not pairs, "\n".join(pairs)
