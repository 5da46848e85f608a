"""Records as lines of JSON: checked, never guessed (``pipeline.core.records``)."""
from __future__ import annotations

import datetime as dt
import decimal
import json

import pytest

from pipeline.core.records import RecordError, record_json


def test_supported_values_are_written():
    t = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.timezone.utc)
    line = record_json({"t": t, "d": dt.date(2026, 1, 2), "b": b"\x00\xff", "n": decimal.Decimal("1.5"),
                        "s": {3, 1, 2}, "l": [1, "x", None, True], "f": 2.5})
    assert json.loads(line) == {"t": t.isoformat(), "d": "2026-01-02", "b": "AP8=", "n": "1.5",
                                "s": [1, 2, 3], "l": [1, "x", None, True], "f": 2.5}
    assert "\n" not in record_json({"text": "two\nlines"})


@pytest.mark.parametrize("value, words", [
    (object(), "type object"),
    (1 + 2j, "type complex"),
    (float("nan"), "cannot be written as JSON"),
    (float("inf"), "cannot be written as JSON"),
    ({1, "a"}, "do not sort"),
    (decimal.Decimal("NaN"), "Decimal NaN"),
])
def test_values_json_cannot_hold_are_errors_not_repr_text(value, words):
    with pytest.raises(RecordError, match=words):
        record_json({"v": value})


def test_a_circular_record_is_an_error_not_a_crash():
    loop: list = []
    loop.append(loop)
    with pytest.raises(RecordError, match="circular|Circular"):
        record_json({"v": loop})
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(RecordError):
        record_json(deep)
