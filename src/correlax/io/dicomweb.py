"""Reading from a PACS over DICOMweb (QIDO-RS to list a study, WADO-RS to fetch it), with dicomweb-client.

Needs the optional extra ``correlax[pacs]``. Every network failure becomes a :class:`PacsError` whose message
is one line naming the server (and the study) and what went wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from correlax.io.pacs import PacsError, images_of, save_dataset

TIMEOUT_S = (10, 120)  # (connect, read): a server that does not answer fails instead of hanging
SERIES_UID = "0020000E"
SOP_INSTANCE_UID = "00080018"
SOP_CLASS_UID = "00080016"


def connect(url: str):
    """A DICOMweb client for ``url`` (the service root, e.g. ``http://host:8042/dicom-web``) that fails at once
    instead of retrying: a rerun picks up what a failed run left."""
    from dicomweb_client.api import DICOMwebClient

    try:
        client = DICOMwebClient(url, timeout=TIMEOUT_S)
    except ValueError as exc:  # a malformed URL or an unsupported scheme
        raise PacsError(f"{url}: not a DICOMweb URL ({exc})") from exc
    client.set_http_retry_params(retry=False)
    return client


@contextmanager
def network_errors(url: str, doing: str) -> Iterator[None]:
    """Turn the errors of an HTTP exchange with ``url`` into one-line :class:`PacsError` s."""
    import requests

    try:
        yield
    except requests.HTTPError as exc:
        response = exc.response
        status = f"HTTP {response.status_code} {response.reason}" if response is not None else str(exc)
        raise PacsError(f"{url}: {doing} refused ({status})") from exc
    except requests.ConnectionError as exc:
        raise PacsError(f"{url}: cannot connect to the server while trying to {doing} ({type(exc).__name__})") from exc
    except requests.Timeout as exc:
        raise PacsError(f"{url}: no answer within {TIMEOUT_S[1]} s while trying to {doing}") from exc
    except requests.RequestException as exc:
        raise PacsError(f"{url}: {doing} failed ({type(exc).__name__}: {exc})") from exc


def _value(attributes: dict, tag: str) -> str | None:
    values = attributes.get(tag, {}).get("Value") or [None]
    return values[0]


def study_images(client, study_uid: str) -> list[tuple[str, str]]:
    """(Series Instance UID, SOP Instance UID) of every image of the study (:func:`images_of`), from QIDO-RS."""
    with network_errors(client.base_url, f"search study {study_uid}"):
        found = client.search_for_instances(study_instance_uid=study_uid, get_remaining=True)
    return images_of(client.base_url, study_uid, [tuple(_value(a, t) for t in (SERIES_UID, SOP_INSTANCE_UID, SOP_CLASS_UID)) for a in found])


def fetch_study(url: str, study_uid: str, folder: Path) -> list[Path]:
    """Fetch every image of the study (:func:`study_images`) into ``folder/<SOP Instance UID>.dcm`` with WADO-RS, in the transfer
    syntax the server holds; instances already there are not fetched again (each file is written atomically,
    so a file that exists is whole). Returns the instances' files."""
    client = connect(url)
    files = []
    for series_uid, sop_uid in study_images(client, study_uid):
        path = Path(folder) / f"{sop_uid}.dcm"
        if not path.exists():
            with network_errors(url, f"fetch instance {sop_uid} of study {study_uid}"):
                dataset = client.retrieve_instance(study_uid, series_uid, sop_uid, media_types=(("application/dicom", "*"),))
            save_dataset(path, dataset)
        files.append(path)
    return files
