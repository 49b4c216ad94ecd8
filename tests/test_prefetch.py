"""prefetch: in order, ahead of the consumer, failed loads reported."""

from __future__ import annotations

import threading

import pytest

from correlax.pipelines.prefetch import prefetch


def test_results_in_order_and_loaded_ahead():
    started: list[int] = []
    three_more = threading.Event()

    def load(i: int) -> int:
        started.append(i)
        if len(started) == 4:
            three_more.set()
        if i == 0:  # the first input finishes only once three more are being loaded beside it
            assert three_more.wait(10)
        return i * i

    out = prefetch(range(6), load, depth=3, workers=2)
    assert next(out).value == 0 and set(started) >= {0, 1, 2, 3}
    assert [r.value for r in out] == [1, 4, 9, 16, 25]


def test_a_failed_load_is_reported_and_the_rest_go_on():
    def load(name: str) -> str:
        if name == "bad.dcm":
            raise OSError("bad.dcm: not a DICOM file")
        return name.upper()

    results = list(prefetch(["a.png", "bad.dcm", "c.png"], load))
    assert [r.item for r in results] == ["a.png", "bad.dcm", "c.png"]
    assert results[1].value is None and "bad.dcm" in str(results[1].error)
    assert results[2].value == "C.PNG" and results[2].error is None


def test_bad_depth():
    with pytest.raises(ValueError, match="depth"):
        list(prefetch([1], str, depth=0))
