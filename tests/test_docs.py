"""The documentation site: it builds in strict mode, and every public name it lists has a docstring.

``mkdocs build --strict`` fails on a broken link, a missing page, an unknown anchor or an API reference
that does not resolve; the CLI reference is rendered from the parser by ``docs/hooks/cli_reference.py``.
"""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
from pathlib import Path

import griffe

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"
DIRECTIVE = re.compile(r"^::: (\S+)\n((?:    .*\n)*)", re.M)


def reference_directives() -> list[tuple[str, bool]]:
    """(identifier, whole module?) of every ``::: name`` in the API reference pages."""
    found = []
    for page in sorted(REFERENCE.glob("*.md")):
        found += [(m.group(1), "members: false" not in m.group(2)) for m in DIRECTIVE.finditer(page.read_text())]
    return found


def undocumented(package: griffe.Module, identifier: str, whole_module: bool) -> list[str]:
    """The listed object, if it has no docstring, and the public functions and classes it renders that have none:
    a whole module's top-level ones, a class's public methods."""
    obj = package[identifier.removeprefix(f"{package.name}.")]
    obj = obj.final_target if obj.is_alias else obj
    members = []
    if obj.is_module and whole_module:
        members = [m for m in obj.members.values() if not m.is_alias and m.is_public and (m.is_function or m.is_class)]
    elif obj.is_class:
        members = [m for m in obj.members.values() if not m.is_alias and m.is_function and not m.name.startswith("_")]
    return [o.path for o in (obj, *members) if not o.docstring]


def test_site_builds_in_strict_mode(tmp_path):
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-4000:]
    cli = (site / "cli.html").read_text()
    for command in ("data csv", "train", "explain", "view", "pointing-game", "crossval", "demo"):
        assert f"correlax {command}" in cli, command
    assert "CorrelaxExplainer" in (site / "reference" / "explain.html").read_text()


def test_every_public_name_in_the_api_reference_has_a_docstring():
    package = griffe.load("correlax", search_paths=[str(ROOT / "src")], docstring_parser="google")
    directives = reference_directives()
    assert len(directives) > 20
    missing = [path for identifier, whole in directives for path in undocumented(package, identifier, whole)]
    assert not missing, "no docstring: " + ", ".join(missing)


def test_the_api_reference_lists_every_exported_class_and_function():
    listed = {identifier.rsplit(".", 1)[-1] for identifier, _ in reference_directives()}
    for page in REFERENCE.glob("*.md"):
        module = importlib.import_module(f"correlax.{page.stem}")
        for name in getattr(module, "__all__", []):
            if inspect.isclass(getattr(module, name)) or inspect.isfunction(getattr(module, name)):
                assert name in listed, f"correlax.{page.stem}.{name} is exported but not in {page.name}"
