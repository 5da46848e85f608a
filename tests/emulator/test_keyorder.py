"""The emulator's ``__key__`` order against ``pipeline.keyorder.sort_key``.

Key ranges are cut at sampled keys and read with ``__key__`` filters, so our
order must be the backend's exactly. The emulator (Java) compares names by UTF-16
code units: characters outside the BMP (surrogate pairs, 0xD800..0xDBFF) sort
*before* U+E000..U+FFFF, where UTF-8 byte order (production) puts them after.
"""
from __future__ import annotations

from collections import Counter

import pytest
from google.cloud import datastore
from google.cloud.datastore.query import PropertyFilter

from pipeline.core.keyorder import StringOrder, path_from_flat, sort_key
from pipeline.datastore.client import client
from pipeline.datastore.sampling import split_unit
from tests.support import TEST_PROJECT
from tests.support.configs import run_config
from tests.support.runs import IN_PROCESS, key_tuple, run_mapper

KIND = "K"

#: Code points where UTF-8 and UTF-16 orders, or encoded lengths, change.
TRICKY = [
    "a", "Z", "~", "\u007f", "\u0080", "é", "\u00ff", "\u0100", "\u07ff", "\u0800",
    "中", "数据", "項目", "한", "\ud7ff", "\ue000", "\ufffd", "ｆ",  # U+FF46, fullwidth f
    "\U00010000", "😀", "🚀", "𝔘", "𠀋", "\U0010fffd",
]
INT_IDS = [1, 2, 10, 255, 256, 2**31, 2**53 + 1, 2**62, 2**63 - 1]


def tricky_names() -> list[str]:
    names = list(TRICKY)
    for t in TRICKY:
        names += [f"x{t}", f"{t}x", f"{t}{t}", f"a{t}b"]
    for a, b in [("\ufffd", "😀"), ("😀", "\ufffd"), ("ｆ", "\U00010000"), ("\ue000", "\U0010fffd"),
                 ("\ud7ff", "\ue000"), ("é", "😀"), ("中", "ｆ")]:
        names += [a + b, f"p-{a}", f"p-{b}", f"p-{a}{b}"]
    return list(dict.fromkeys(names))


def key_paths() -> list[tuple]:
    """Flat paths of every K entity: names, ids, and children under tricky parents."""
    paths = [(KIND, n) for n in tricky_names()] + [(KIND, i) for i in INT_IDS]
    parents = [("P", "\U0001f600"), ("P", "\ufffd"), ("P", "ｆ"), ("P", 7), ("P", 2**40),
               ("Pé", "a"), ("P\U0001f680", "a"), ("Pｆ", "a"), ("P\ue000", 1),
               (KIND, "a"), (KIND, "\U00010000"), (KIND, 2)]
    children = ["a", "😀", "\ufffd", "ｆ", "é", 3, 2**62]
    for parent in parents:
        for child in children:
            paths.append((*parent, KIND, child))
    # a grandchild, and a child under a child
    paths.append(("P", "ｆ", "Q", "\U00010000", KIND, "z"))
    paths.append(("P", "\U0001f600", KIND, "😀", KIND, "ｆ"))
    return list(dict.fromkeys(paths))


def seed() -> list[tuple]:
    c = datastore.Client(project=TEST_PROJECT)
    paths = key_paths()
    entities = []
    for flat in paths:
        e = datastore.Entity(c.key(*flat))
        e["n"] = 1
        entities.append(e)
    for i in range(0, len(entities), 500):
        c.put_multi(entities[i:i + 500])
    return paths


def emulator_key_order(c: datastore.Client, *filters) -> list[tuple]:
    q = c.query(kind=KIND)
    for f in filters:
        q.add_filter(filter=f)
    q.keys_only()
    q.order = ["__key__"]
    return [path_from_flat(e.key.flat_path) for e in q.fetch()]


def utf16(path) -> tuple:
    return sort_key(path, StringOrder.UTF16)


def test_sort_key_utf16_is_the_emulators_key_order(emulator):
    seeded = seed()
    c = datastore.Client(project=TEST_PROJECT)
    order = emulator_key_order(c)
    assert Counter(order) == Counter(path_from_flat(p) for p in seeded)
    ours = sorted(order, key=utf16)
    if ours != order:
        first = next(i for i, (a, b) in enumerate(zip(ours, order)) if a != b)
        pytest.fail(f"first difference at {first}: ours {ours[first]!r}, emulator {order[first]!r}")
    # The data tells the two orders apart, so the check above has teeth.
    assert sorted(order, key=lambda p: sort_key(p, StringOrder.UTF8)) != order
    # Range filters agree too (ranges are read with them, not sorted): for bounds at
    # tricky names, >= and < return exactly the keys on each side in our order.
    for flat in [(KIND, t) for t in TRICKY] + [(KIND, 2**53 + 1), ("P", "ｆ", KIND, "😀")]:
        key, bound = c.key(*flat), path_from_flat(flat)
        above = emulator_key_order(c, PropertyFilter("__key__", ">=", key))
        below = emulator_key_order(c, PropertyFilter("__key__", "<", key))
        assert above == [p for p in ours if utf16(p) >= utf16(bound)], bound
        assert below == [p for p in ours if utf16(p) < utf16(bound)], bound


@pytest.mark.parametrize("shards,slice_entities", [(8, 2000), (64, 5)])
def test_export_keys_exactly_once_with_tricky_split_points(emulator, tmp_path, shards, slice_entities):
    seeded = seed()
    # A first read of 5 keys: the namespace is sampled and split at the tricky points (with the
    # default bound its 238 keys would be read in one query, never split).
    args = ["--params", f"kind={KIND}", "--shards", str(shards), "--oversampling", "1",
            "--slice_entities", str(slice_entities), "--query_entities", "5"]

    # The split points the run will use (the emulator's scatter sample is stable):
    # with one sample per range nearly every sampled key is a split point.
    read = run_config("export_keys", *args).read
    ranges, samples = split_unit(client(read.target), read, "", KIND)
    assert len(ranges) == min(shards, samples) and len(ranges) > 1
    cuts = [r.start[-1][1] for r in ranges[1:]]
    if shards == 64:
        names = [x for x in cuts if isinstance(x, str)]
        assert any(any(ord(ch) > 0xFFFF for ch in n) for n in names), cuts
        assert any(any(0xE000 <= ord(ch) <= 0xFFFF for ch in n) for n in names), cuts

    result = run_mapper("export_keys", args, output=str(tmp_path / "out"), runner=IN_PROCESS)
    assert result.code == 0, f"exit {result.code}\nstderr:\n{result.stderr[-6000:]}"
    got = Counter(key_tuple(r) for r in result.records)
    want = Counter(("", tuple(p)) for p in seeded)
    dups = [k for k, n in got.items() if n > 1]
    missing = [k for k in want if k not in got]
    extra = [k for k in got if k not in want]
    assert not (dups or missing or extra), (
        f"{len(dups)} read twice {dups[:5]}, {len(missing)} missing {missing[:5]}, "
        f"{len(extra)} unexpected {extra[:5]}")
    summary = result.summary["namespaces"]["__default__"]
    assert summary["ranges"] == len(ranges) and summary["entities"] == len(seeded)
    if slice_entities == 5:
        assert summary["slices"] >= len(seeded) // 5


def test_wrong_key_order_cannot_pass_silently(emulator, tmp_path):
    """With production's UTF-8 order forced on the emulator the ranges disagree with the
    backend: the run must not look successful with a complete, duplicate-free output. (A
    first read of 5 keys, so the namespace is split: read whole in one query, the order would
    not matter.)"""
    seeded = seed()
    try:
        result = run_mapper("export_keys", [
            "--params", f"kind={KIND}", "--shards", "64", "--oversampling", "1", "--key_order", "utf8",
            "--query_entities", "5"],
            output=str(tmp_path / "out"), runner=IN_PROCESS)
    except Exception as e:  # the key tracker refuses keys claimed out of order
        assert "increasing order" in str(e), e
        return
    got = Counter(key_tuple(r) for r in result.records)
    assert result.code != 0 or got != Counter(("", tuple(p)) for p in seeded)
