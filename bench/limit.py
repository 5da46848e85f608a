"""The 'limit': a bare google-cloud-datastore loop reading every entity of a kind.

Every namespace is cut into disjoint key ranges at the quantiles of a ``__scatter__``
sample; ``--threads`` threads (one client each) read the ranges (``__key__ >= a AND
__key__ < b``, full entities, paged by the client) and count. With ``--pieces 0`` each
namespace is cut into ``--ranges`` (= threads) ranges, one query each. With ``--pieces N``
it is cut into up to N narrow ranges (fewer for small namespaces): the Cloud Datastore
emulator evaluates a query's whole result set for every page it returns (measured:
a page's time grows with the entities between the query's bounds, not with its limit),
so narrow ranges are what it serves fastest; production Datastore does not care.
Prints one JSON line: {"entities": N, "namespaces": {ns: n}, ...}.

Run by bench.bench as a separate process, so it is measured like the pipelines.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from google.cloud import datastore
from google.cloud.datastore.query import PropertyFilter


def emulator_sort_key(key: datastore.Key):
    """Key order of the emulator: element by element, kind, then ids (numeric) before
    names; strings as UTF-16 code units (big-endian bytes compare the same way)."""
    out = []
    flat = key.flat_path
    for i in range(0, len(flat), 2):
        kind, ident = flat[i], flat[i + 1] if i + 1 < len(flat) else None
        k = kind.encode("utf-16-be")
        if isinstance(ident, int):
            out.append((k, 0, ident, b""))
        else:
            out.append((k, 1, 0, (ident or "").encode("utf-16-be")))
    return tuple(out)


def namespaces(c: datastore.Client) -> list[str]:
    q = c.query(kind="__namespace__")
    q.keys_only()
    return sorted("" if k.key.id_or_name in (1, "") else str(k.key.id_or_name) for k in q.fetch())


def split_points(c: datastore.Client, kind: str, ns: str, ranges: int, oversampling: int,
                 shrink: bool):
    q = c.query(kind=kind, namespace=ns or None)
    q.keys_only()
    q.order = ["__scatter__"]
    keys = sorted((e.key for e in q.fetch(limit=ranges * oversampling)), key=emulator_sort_key)
    if shrink:  # narrow pieces: a small namespace gets fewer
        ranges = min(ranges, max(1, len(keys) // oversampling))
    cuts = []
    for i in range(1, ranges):
        if keys:
            k = keys[(i * len(keys)) // ranges]
            if not cuts or cuts[-1].flat_path != k.flat_path:
                cuts.append(k)
    return [None, *cuts, None]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.limit")
    ap.add_argument("--project", required=True)
    ap.add_argument("--kind", default="Item")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ranges", type=int, default=2,
                    help="key ranges per namespace without --pieces (default 2)")
    ap.add_argument("--pieces", type=int, default=0,
                    help="narrow key ranges per namespace, 0: --ranges wide ones (default 0)")
    ap.add_argument("--oversampling", type=int, default=None,
                    help="scatter samples per range (default 32, or 4 with --pieces)")
    ap.add_argument("--keys_only", action="store_true")
    args = ap.parse_args(argv)
    if not os.environ.get("DATASTORE_EMULATOR_HOST"):
        print("DATASTORE_EMULATOR_HOST is not set", file=sys.stderr)
        return 2
    started = time.monotonic()
    c0 = datastore.Client(project=args.project)
    tasks = []
    n_ranges = args.pieces or args.ranges
    oversampling = args.oversampling or (4 if args.pieces else 32)
    for ns in namespaces(c0):
        bounds = split_points(c0, args.kind, ns, n_ranges, oversampling, shrink=bool(args.pieces))
        tasks += [(ns, lo, hi) for lo, hi in zip(bounds, bounds[1:])]
    planned = time.monotonic()

    import threading
    local = threading.local()

    def read(task):
        ns, lo, hi = task
        c = getattr(local, "client", None)
        if c is None:
            c = local.client = datastore.Client(project=args.project)
        q = c.query(kind=args.kind, namespace=ns or None)
        if lo is not None:
            q.add_filter(filter=PropertyFilter("__key__", ">=", lo))
        if hi is not None:
            q.add_filter(filter=PropertyFilter("__key__", "<", hi))
        if args.keys_only:
            q.keys_only()
        n = 0
        for _ in q.fetch():
            n += 1
        return ns, n

    per_ns: dict[str, int] = {}
    per_range = []
    with ThreadPoolExecutor(args.threads) as pool:
        for ns, n in pool.map(read, tasks):
            per_ns[ns] = per_ns.get(ns, 0) + n
            per_range.append([ns, n])
    done = time.monotonic()
    print(json.dumps({"entities": sum(per_ns.values()), "namespaces": per_ns, "ranges": per_range,
                      "queries": len(tasks), "plan_seconds": round(planned - started, 3),
                      "read_seconds": round(done - planned, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
