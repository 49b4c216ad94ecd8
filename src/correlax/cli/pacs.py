"""``correlax explain --from URL --study UID`` and ``--send URL``: the PACS steps wrapped around the command."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import logging
import os
from collections.abc import Callable

PREFIX = "correlax explain:"


def add_pacs_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("PACS: a DICOMweb root http(s)://… or a DIMSE address dicom://AET@host:port "
                                  "(needs correlax[pacs])")  # fmt: skip
    g.add_argument("--from", dest="from_url", metavar="URL",
                   help="PACS to fetch --study from first (QIDO-RS and WADO-RS, or C-FIND and C-GET), e.g. "
                        "http://pacs:8042/dicom-web; the images go to OUT/from-pacs/<study>/")  # fmt: skip
    g.add_argument("--study", metavar="UID", help="Study Instance UID to fetch with --from")
    g.add_argument("--send", metavar="URL",
                   help="PACS to store the DICOM outputs to after explaining (STOW-RS or C-STORE; needs --dicom); "
                        "OUT/sent-to-pacs.jsonl lists what was stored, a rerun stores the rest")  # fmt: skip


def _problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the PACS options, before anything is fetched or computed."""
    if bool(args.from_url) != bool(args.study):
        return "--from URL and --study UID go together"
    if not args.inputs and not args.from_url:
        return "give image files or folders, or --from URL --study UID"
    if args.send and not args.dicom:
        return "--send stores the DICOM outputs: add --dicom"
    missing = [m for m in ("dicomweb_client", "pynetdicom") if importlib.util.find_spec(m) is None]
    if (args.from_url or args.send) and missing:
        return f"--from and --send need {' and '.join(missing)}: pip install 'correlax[pacs]'"
    return None


def _first_rank() -> bool:
    """True in the process that reports (Lightning starts the other ranks with LOCAL_RANK/NODE_RANK set)."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def with_pacs(run: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``run`` with the study fetched into ``--out`` before it (added to the inputs) and the outputs stored after
    it. A PACS failure prints one line naming the server and what is wrong; the exit status is then non-zero."""

    @functools.wraps(run)
    def explain_with_pacs(args: argparse.Namespace) -> int:
        problem = _problem(args)
        if problem:
            print(f"{PREFIX} {problem}")
            return 2
        if not getattr(args, "verbose", False):
            for library in ("dicomweb_client", "pynetdicom"):  # lines per request; correlax says what failed, once
                logging.getLogger(library).setLevel(logging.CRITICAL)
        if args.from_url:
            from correlax.io.pacs import PacsError
            from correlax.pipelines.pacs import fetch_inputs

            try:
                args.inputs = [*args.inputs, fetch_inputs(args.from_url, args.study, args.out)]
            except (PacsError, OSError) as e:
                print(f"{PREFIX} {e}")
                return 2
        status = run(args)
        if not args.send or status == 2 or not _first_rank():  # 2: nothing was explained (bad model, bad inputs)
            return status
        return max(status, _send(args.send, args.out))

    return explain_with_pacs


def _send(url: str, out) -> int:
    from correlax.io.pacs import PacsError
    from correlax.pipelines.pacs import send_outputs

    try:
        report = send_outputs(url, out)
    except PacsError as e:
        print(f"{PREFIX} {e}")
        return 1
    print(f"{len(report.sent)} DICOM object(s) stored to {url}, {len(report.already)} stored before, "
          f"{len(report.failures)} refused")  # fmt: skip
    for line in report.failures:
        print(f"  NOT STORED {line}")
    return 1 if report.failures else 0
