"""The export's key records and timestamps, built by hand for speed, against what ``Key.path``
and ``strftime`` give (the way they were built before)."""
from __future__ import annotations

import datetime as dt
import random

import pytest
from google.cloud.datastore.key import Key

from pipeline.core import export_format as ef


def _by_strftime(t: dt.datetime) -> str:
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f") + " UTC"


def _by_path(key) -> dict:
    path = [{"kind": el.get("kind"), "id": el.get("id"), "name": el.get("name")}
            for el in key.path]
    return {"namespace": key.namespace or "", "path": path, "id": key.id, "name": key.name}


def test_a_timestamp_reads_as_strftime_writes_it_in_every_year_and_zone():
    rng = random.Random(7)
    zones = [None, dt.timezone.utc, dt.timezone(dt.timedelta(hours=5, minutes=30)),
             dt.timezone(dt.timedelta(hours=-8))]
    checked = 0
    for year in [1, 9, 99, 999, 1000, 1969, 1970, 2026, 9999, *rng.sample(range(1, 10000), 300)]:
        for zone in zones:
            t = dt.datetime(year, rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23),
                            rng.randint(0, 59), rng.randint(0, 59),
                            rng.choice([0, 1, 999999, rng.randint(0, 999999)]), tzinfo=zone)
            try:
                want = _by_strftime(t)
            except OverflowError:  # year 1 east of UTC, year 9999 west of it
                continue
            assert ef.timestamp_text(t) == want, t
            checked += 1
    assert checked > 1000


@pytest.mark.parametrize("key", [
    Key("A", 1, project="p"),
    Key("A", "x", "B", 2, project="p", namespace="n"),
    Key("A", "x", "B", "y", "C", 2**63 - 1, project="p", namespace="n", database="d"),
    Key("A", project="p"),
    Key("A", "x", "B", project="p"),
], ids=str)
def test_a_key_record_is_the_one_its_path_gives(key):
    assert ef.key_record(key) == _by_path(key)
