"""Reading the adapters' CSV tables as spreadsheets write them: a UTF-8 BOM, ',' ';' or tab separators."""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from correlax.data.validate import Problems
from correlax.fileio import not_a_regular_file

log = logging.getLogger(__name__)

SEPARATORS = ",;\t"


def read_rows(path: Path, required: tuple[str, ...], problems: Problems) -> list[tuple[int, dict[str, str]]]:
    """(line number, row with stripped values) pairs of the CSV table at ``path``.

    The separator is sniffed from the header line among ``,``, ``;`` and tab; a UTF-8 byte-order mark
    (Excel's "CSV UTF-8") is accepted. Text that is not UTF-8, and missing ``required`` columns, are
    recorded in ``problems`` with the line (and no rows returned); a table without data rows is warned.

    Raises:
        FileNotFoundError: the file cannot be read.
    """
    special = not_a_regular_file(path)
    if special:
        raise FileNotFoundError(f"{path}: cannot read the table ({special})")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise FileNotFoundError(f"{path}: cannot read the table ({e.strerror})") from e
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        problems.add(path, line, f"not UTF-8 text (byte 0x{data[e.start]:02x}); save the table as UTF-8 (Excel: 'CSV UTF-8')")
        return []
    separator = _separator(text.partition("\n")[0])
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=separator)
    found = reader.fieldnames or []
    missing = [c for c in required if c not in found]
    if missing:
        problems.add(
            path,
            1,
            f"missing column(s): {', '.join(missing)}; expected {', '.join(required)}; "
            f"found {', '.join(found) or 'none'} (separated by {separator!r})",
        )
        return []
    rows = [(reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}) for row in reader]
    if not rows:
        log.warning("%s: the table has a header but no rows", path)
    return rows


def _separator(header: str) -> str:
    try:
        return csv.Sniffer().sniff(header, delimiters=SEPARATORS).delimiter
    except csv.Error:  # a single column, or no header at all
        return ","
