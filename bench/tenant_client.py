"""The bare client of ``bench.tenants``: every namespace read with one keys-only query.

A pool of ``--threads`` threads (one client each) takes the namespaces as ``__namespace__``
lists them and reads each with one keys-only query of the kind. A namespace named with
``--big`` is read as the mapper would read it: a ``__scatter__`` sample, narrow key ranges
of about ``--piece_entities`` entities each, every range a task of the same pool. Prints one
JSON line: {"entities": N, "namespaces": n, "queries": q, "big": {ns: entities}, ...}.

Run by bench.tenants as a separate process, so it is measured like the mapper.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from google.cloud import datastore
from google.cloud.datastore.query import PropertyFilter

from bench.limit import emulator_sort_key

#: The emulator marks about one entity in two with a scatter property (production: 1 in 128).
EMULATOR_SCATTER_RATE = 0.5


def namespace_names(c: datastore.Client):
    q = c.query(kind="__namespace__")
    q.keys_only()
    for e in q.fetch():
        name = e.key.id_or_name
        yield "" if name in (1, "") else str(name)


def big_ranges(c: datastore.Client, kind: str, ns: str, piece_entities: int,
               samples: int) -> list:
    """Narrow key ranges of about ``piece_entities`` entities, cut at scatter samples."""
    q = c.query(kind=kind, namespace=ns or None)
    q.keys_only()
    q.order = ["__scatter__"]
    keys = sorted((e.key for e in q.fetch(limit=samples)), key=emulator_sort_key)
    step = max(1, round(piece_entities * EMULATOR_SCATTER_RATE))
    cuts = keys[step::step]
    bounds = [None, *cuts, None]
    return [(ns, lo, hi) for lo, hi in zip(bounds, bounds[1:])]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tenant_client")
    ap.add_argument("--project", required=True)
    ap.add_argument("--kind", default="Item")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--big", action="append", default=[],
                    help="a namespace read in narrow ranges (repeatable)")
    ap.add_argument("--piece_entities", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=256, help="scatter keys sampled per big one")
    args = ap.parse_args(argv)
    if not os.environ.get("DATASTORE_EMULATOR_HOST"):
        print("DATASTORE_EMULATOR_HOST is not set", file=sys.stderr)
        return 2
    started = time.monotonic()
    local = threading.local()
    big = set(args.big)

    def client() -> datastore.Client:
        c = getattr(local, "client", None)
        if c is None:
            c = local.client = datastore.Client(project=args.project)
        return c

    def read(task) -> tuple:
        ns, lo, hi = task
        q = client().query(kind=args.kind, namespace=ns or None)
        q.keys_only()
        if lo is not None:
            q.add_filter(filter=PropertyFilter("__key__", ">=", lo))
        if hi is not None:
            q.add_filter(filter=PropertyFilter("__key__", "<", hi))
        return ns, sum(1 for _ in q.fetch())

    def tasks():
        for ns in namespace_names(client()):
            if ns in big:
                yield from big_ranges(client(), args.kind, ns, args.piece_entities,
                                      args.samples)
            else:
                yield ns, None, None

    entities = queries = 0
    namespaces: set = set()
    per_big: dict = {}
    with ThreadPoolExecutor(args.threads) as pool:
        for ns, n in pool.map(read, tasks()):
            entities += n
            queries += 1
            namespaces.add(ns)
            if ns in big:
                per_big[ns] = per_big.get(ns, 0) + n
    print(json.dumps({"entities": entities, "namespaces": len(namespaces), "queries": queries,
                      "big": per_big, "seconds": round(time.monotonic() - started, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
