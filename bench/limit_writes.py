"""The write 'limit': a bare google-cloud-datastore loop that reads every entity of a kind
over narrow key ranges (as ``bench.limit --pieces``), renames a property and puts the entities
back in batches of 500, with ``--threads`` threads (one client each). Blind, no undo log.

Prints one JSON line {"entities": N, "written": N}. Needs DATASTORE_EMULATOR_HOST.
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

from bench.limit import namespaces, split_points

BATCH = 500


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.limit_writes")
    ap.add_argument("--project", required=True)
    ap.add_argument("--kind", default="Item")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pieces", type=int, default=16)
    ap.add_argument("--from", dest="old", required=True)
    ap.add_argument("--to", dest="new", required=True)
    args = ap.parse_args(argv)
    if not os.environ.get("DATASTORE_EMULATOR_HOST"):
        print("DATASTORE_EMULATOR_HOST is not set", file=sys.stderr)
        return 2
    started = time.monotonic()
    c0 = datastore.Client(project=args.project)
    tasks = []
    for ns in namespaces(c0):
        bounds = split_points(c0, args.kind, ns, args.pieces, 4, shrink=True)
        tasks += [(ns, lo, hi) for lo, hi in zip(bounds, bounds[1:])]
    local = threading.local()

    def work(task):
        ns, lo, hi = task
        c = getattr(local, "client", None)
        if c is None:
            c = local.client = datastore.Client(project=args.project)
        q = c.query(kind=args.kind, namespace=ns or None)
        if lo is not None:
            q.add_filter(filter=PropertyFilter("__key__", ">=", lo))
        if hi is not None:
            q.add_filter(filter=PropertyFilter("__key__", "<", hi))
        read, written, batch = 0, 0, []
        for e in q.fetch():
            read += 1
            if args.old in e:
                e[args.new] = e.pop(args.old)
                batch.append(e)
            if len(batch) == BATCH:
                c.put_multi(batch)
                written += len(batch)
                batch = []
        if batch:
            c.put_multi(batch)
            written += len(batch)
        return read, written

    with ThreadPoolExecutor(args.threads) as pool:
        done = list(pool.map(work, tasks))
    print(json.dumps({"entities": sum(r for r, _ in done), "written": sum(w for _, w in done),
                      "ranges": len(tasks), "seconds": round(time.monotonic() - started, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
