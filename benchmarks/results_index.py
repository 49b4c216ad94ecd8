"""Write ``benchmarks/results/README.md``: every results file, the commit and date its provenance records, the
README/docs sections that cite it, and whether it is current.

A file is *current* when a current page (README.md, or docs/ outside docs/archive/) cites it, or when it is a run
that a current comparison file names as its input (``compare_crossval.py``'s ``runs``). Superseded runs live in
``benchmarks/results/archive/``; a file outside it that nothing current cites is listed as "not cited" (the test
fails on it: cite it or archive it). Pages cite files by their path below ``benchmarks/results/``, with ``*`` and
``{a,b}`` patterns (``mias-lever-stride-seed*.json``) or a folder (``engine-host-ab/``).

    python benchmarks/results_index.py           # rewrite the index
    python benchmarks/results_index.py --check   # exit 1 when the index is out of date
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
INDEX = RESULTS / "README.md"
ARCHIVE = "archive/"
PREFIX = "benchmarks/results/"
CITATION = re.compile(r"[\w.{},*/-]+\.json|[\w.-]+/(?=`)")  # a file name or pattern, or a folder in backticks


@dataclass
class Entry:
    """One results file: what its provenance records and who cites it."""

    path: str  # below benchmarks/results/
    commit: str | None
    date: str | None
    after_the_fact: bool
    cited_by: list[tuple[str, str]] = field(default_factory=list)  # (page, section)
    input_of: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """"archived", "current" or "not cited"."""
        if self.path.startswith(ARCHIVE):
            return "archived"
        return "current" if self.cited_by or self.input_of else "not cited"


def expand_braces(pattern: str) -> list[str]:
    """``a{0,1}.json`` → ``a0.json``, ``a1.json`` (nested and repeated braces too)."""
    match = re.search(r"\{([^{}]*)\}", pattern)
    if not match:
        return [pattern]
    head, tail = pattern[: match.start()], pattern[match.end() :]
    return [p for alt in match.group(1).split(",") for p in expand_braces(head + alt + tail)]


def cited_files(token: str, files: Sequence[str]) -> list[str]:
    """The files a token of a page names: a path or pattern below benchmarks/results/, or a folder there."""
    token = token.split(PREFIX, 1)[-1]
    if token.endswith("/"):
        return [f for f in files if f.startswith(token)]
    return [f for pattern in expand_braces(token) for f in files if fnmatch.fnmatchcase(f, pattern)]


def citations(pages: Mapping[str, str], files: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
    """For each file, the (page, section heading) pairs that cite it, in page order, each pair once."""
    found: dict[str, list[tuple[str, str]]] = {}
    for page, text in pages.items():
        section, fenced = page, False
        for line in text.splitlines():
            fenced ^= line.startswith("```")
            if not fenced and re.match(r"#{1,6} ", line):
                section = line.lstrip("#").strip()
            for token in CITATION.findall(line):
                for f in cited_files(token, files):
                    if (page, section) not in found.setdefault(f, []):
                        found[f].append((page, section))
    return found


def current_pages(root: Path) -> dict[str, str]:
    """README.md and the docs pages outside docs/archive/, by path relative to ``root``."""
    docs = root / "docs"
    paths = [root / "README.md", *(p for p in sorted(docs.rglob("*.md")) if "archive" not in p.relative_to(docs).parts)]
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8") for p in paths}


def entries(results: Path, pages: Mapping[str, str]) -> list[Entry]:
    """Every results file below ``results``, with its provenance, citations and comparison inputs."""
    files = sorted(p.relative_to(results).as_posix() for p in results.rglob("*.json"))
    data = {f: json.loads((results / f).read_text(encoding="utf-8")) for f in files}
    cited = citations(pages, files)
    out = []
    for f in files:
        provenance = data[f].get("provenance") or {}
        out.append(Entry(f, provenance.get("commit"), provenance.get("date"), "recorded" in provenance, cited.get(f, [])))
    by_name = {e.path: e for e in out}
    for e in out:  # a current comparison (compare_crossval.py's "runs": A and B) keeps the runs it pairs current
        runs = data[e.path].get("runs")
        if e.status != "current" or not isinstance(runs, dict):
            continue
        for name in {run.get("file") for run in runs.values()} & set(by_name):
            by_name[name].input_of.append(e.path)
    return out


def render(rows: Sequence[Entry]) -> str:
    """The index page (Markdown), links relative to benchmarks/results/."""
    lines = [
        "# Results files",
        "",
        "Generated by `python benchmarks/results_index.py` (a test checks it is up to date): every file, the commit and",
        "date its `provenance` block records, what it supports (the sections that cite it) and whether it is current.",
        "Files whose provenance was recorded after the fact from git history (marked †) name the commit that last",
        "wrote them; their machine and command are those stated in the section that cites them. Superseded runs are",
        "in `archive/`.",
        "",
        "| file | commit | date | supports | status |",
        "| --- | --- | --- | --- | --- |",
    ]
    for e in rows:
        supports = [f"[{page}](../../{page}) § {section}" for page, section in e.cited_by]
        supports += [f"input of [`{f}`]({f})" for f in e.input_of]
        commit = (e.commit or "—")[:7] + (" †" if e.after_the_fact else "")
        date = (e.date or "—")[:10]
        lines.append(f"| [`{e.path}`]({e.path}) | {commit} | {date} | {'; '.join(supports) or '—'} | {e.status} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the index differs from what would be written")
    args = ap.parse_args(argv)
    rows = entries(RESULTS, current_pages(ROOT))
    text = render(rows)
    uncited = [e.path for e in rows if e.status == "not cited"]
    if uncited:
        print("not cited by any current page (cite or move to archive/): " + ", ".join(uncited), file=sys.stderr)
    if args.check:
        stale = not INDEX.exists() or INDEX.read_text(encoding="utf-8") != text
        if stale:
            print(f"{INDEX} is out of date: run python benchmarks/results_index.py", file=sys.stderr)
        return 1 if stale else 0
    INDEX.write_text(text, encoding="utf-8")
    print(f"{INDEX}: {len(rows)} files, {len(uncited)} not cited")
    return 0


if __name__ == "__main__":
    sys.exit(main())
