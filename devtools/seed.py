"""Deterministic demo/test data for the Datastore emulator.

The data is shaped to exercise what the mapper must get right: namespaces of very different
sizes, integer ids and string names mixed (they sort separately in key order), unicode names
including characters outside the BMP (UTF-16 surrogates in Java, 4-byte UTF-8), child entities,
an unindexed property and a list-valued datetime property.

Usage: python -m devtools.seed --project demo [--small]   (needs DATASTORE_EMULATOR_HOST)
"""

from __future__ import annotations

import argparse
import os
import random
import string
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from google.cloud import datastore

REFERENCE_TIME = datetime(2026, 11, 27, tzinfo=timezone.utc)  # `created` < this
CREATED_START = REFERENCE_TIME - timedelta(days=3)  # `created` >= this
CATEGORIES = ("books", "electronics", "garden", "grocery", "toys")
TAGS = ("new", "sale", "popular", "limited", "eco", "imported", "refurbished", "gift")
BATCH_SIZE = 500  # production's limit of mutations per commit (the emulator does not enforce it)
PARENT_KIND = "Parent"

_ASCII_WORDS = ("alpha", "Bravo", "charlie", "delta", "Echo", "foxtrot", "golf", "0-zero", "9-nine")
_ACCENTED = ("café", "crème", "Ärger", "niño", "Øresund", "über", "élan")
# Fullwidth (U+FF..) sorts after non-BMP characters in UTF-8 byte order but before them in UTF-16
# order, and the emulator (Java) orders names by UTF-16: key-order code must not assume either.
_CJK = ("項目", "データ", "東京", "数据", "한국어", "ｆｕｌｌｗｉｄｔｈ")
_NON_BMP = ("item-😀", "🚀", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𠀋字", "x-🎉-y")
# One cycle of key styles: half integer ids, then names of each flavour.
_STYLE_CYCLE = ("id", "ascii", "id", "accented", "id", "cjk", "id", "non_bmp", "id", "ascii")
_PAYLOAD_CHARS = string.ascii_letters + string.digits + "      "


@dataclass(frozen=True)
class NamespaceSpec:
    """How many `kind` entities to write into one namespace ("" is the default namespace)."""

    name: str
    count: int


DEMO_DATASET: list[NamespaceSpec] = [
    NamespaceSpec("", 1500),
    NamespaceSpec("acme", 3000),
    NamespaceSpec("globex", 600),
    NamespaceSpec("initech", 60),
    NamespaceSpec("umbrella", 5),
]


def _spread(rng: random.Random, count: int, fraction: float) -> list[bool]:
    """Exactly round(count * fraction) True values at random positions (stable proportions)."""
    flags = [i < round(count * fraction) for i in range(count)]
    rng.shuffle(flags)
    return flags


def _random_time(rng: random.Random) -> datetime:
    span_us = int((REFERENCE_TIME - CREATED_START) / timedelta(microseconds=1))
    return CREATED_START + timedelta(microseconds=rng.randrange(span_us))


def _key_id_or_name(rng: random.Random, style: str, i: int, used_ids: set[int]) -> int | str:
    if style == "id":
        while (ident := rng.randint(1, 2**62)) in used_ids:
            pass
        used_ids.add(ident)
        return ident
    pool = {"ascii": _ASCII_WORDS, "accented": _ACCENTED, "cjk": _CJK, "non_bmp": _NON_BMP}[style]
    suffix = f"{rng.getrandbits(24):06x}-{i}" if style == "ascii" else str(i)
    return f"{rng.choice(pool)}-{suffix}"  # `i` keeps names unique within the namespace


def _namespace_entities(
    client: datastore.Client, spec: NamespaceSpec, kind: str, seed: int, with_children: bool
) -> tuple[list[datastore.Entity], list[datastore.Entity]]:
    """Build (parents, items) for one namespace; the RNG is seeded per namespace so adding one
    namespace does not change the data of the others."""
    rng = random.Random(f"{seed}:{spec.name}:{kind}")
    styles = [_STYLE_CYCLE[i % len(_STYLE_CYCLE)] for i in range(spec.count)]
    rng.shuffle(styles)
    is_child = _spread(rng, spec.count, 0.10 if with_children else 0.0)
    has_dates = _spread(rng, spec.count, 0.05)

    n_parents = max(1, sum(is_child) // 5)
    parent_keys = [client.key(PARENT_KIND, rng.randint(1, 2**62) if j % 2 else f"parent-{j}")
                   for j in range(n_parents)]
    parents = []
    for j, pkey in enumerate(parent_keys):
        if j % 2 == 0 and any(is_child):  # only some parents exist: children of missing ones are legal
            parent = datastore.Entity(pkey)
            parent.update({"n": j, "label": f"parent {j}"})
            parents.append(parent)

    used_ids: set[int] = set()
    items = []
    for i in range(spec.count):
        ident = _key_id_or_name(rng, styles[i], i, used_ids)
        key = (client.key(kind, ident, parent=rng.choice(parent_keys)) if is_child[i]
               else client.key(kind, ident))
        entity = datastore.Entity(key, exclude_from_indexes=("payload",))
        props: dict[str, Any] = {
            "n": i,
            "category": rng.choice(CATEGORIES),
            "created": _random_time(rng),
            "score": round(rng.uniform(0.0, 100.0), 3),
            "tags": rng.sample(TAGS, rng.randint(1, 3)),
            "payload": "".join(rng.choices(_PAYLOAD_CHARS, k=rng.randint(100, 300))),
        }
        if has_dates[i]:
            props["dates"] = sorted(_random_time(rng) for _ in range(rng.randint(2, 3)))
        entity.update(props)
        items.append(entity)
    return parents, items


def seed_dataset(
    client_project: str,
    spec: list[NamespaceSpec],
    kind: str = "Item",
    seed: int = 0,
    with_children: bool = True,
    *,
    allow_real_datastore: bool = False,
) -> dict[str, list[tuple[Any, ...]]]:
    """Write the dataset; return, per namespace, the `flat_path` of each `kind` entity in `n` order.

    A few extra entities of kind "Parent" are also written (not in the result, not in `count`).
    Refuses to run without DATASTORE_EMULATOR_HOST unless `allow_real_datastore`, so demo data
    never lands in a real project by accident.
    """
    if not allow_real_datastore and not os.environ.get("DATASTORE_EMULATOR_HOST"):
        raise RuntimeError("DATASTORE_EMULATOR_HOST is not set: refusing to seed a real Datastore")
    names = [s.name for s in spec]
    if len(set(names)) != len(names) or any(s.count < 0 for s in spec):
        raise ValueError(f"namespaces must be unique and counts >= 0: {spec}")
    written: dict[str, list[tuple[Any, ...]]] = {}
    for ns in spec:
        client = datastore.Client(project=client_project, namespace=ns.name or None)
        parents, items = _namespace_entities(client, ns, kind, seed, with_children)
        entities = parents + items
        for start in range(0, len(entities), BATCH_SIZE):
            client.put_multi(entities[start:start + BATCH_SIZE])
        written[ns.name] = [e.key.flat_path for e in items]
    return written


def main(argv: list[str] | None = None, prog: str = "python -m devtools.seed") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    parser.add_argument("--project", default=os.environ.get("DATASTORE_PROJECT_ID", "demo"))
    parser.add_argument("--small", action="store_true", help="a tenth of DEMO_DATASET (min 1 each)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not os.environ.get("DATASTORE_EMULATOR_HOST"):
        print("DATASTORE_EMULATOR_HOST is not set: start the emulator first (datastore-mapper "
              "emulator, in another shell) and export what it prints.", file=sys.stderr)
        return 2
    spec = [NamespaceSpec(s.name, max(1, s.count // 10)) if args.small else s for s in DEMO_DATASET]
    started = time.monotonic()
    written = seed_dataset(args.project, spec, seed=args.seed)
    elapsed = time.monotonic() - started
    for name, keys in written.items():
        print(f"  {name or '(default)':<12} {len(keys):>6}")
    total = sum(len(k) for k in written.values())
    print(f"seeded {total} entities into project {args.project!r} at "
          f"{os.environ['DATASTORE_EMULATOR_HOST']} in {elapsed:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
