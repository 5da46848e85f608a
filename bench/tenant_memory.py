"""Benchmark: where a many-tenant run's memory goes (issue 25).

    .venv/bin/python -m bench.tenant_memory [--namespaces 500,2000,4000] [--ab-tree DIR]
        [--summary-namespaces 20000]

For each N of ``--namespaces``: a fresh emulator with N namespaces of one entity, then ours
(``count_keys --output``, the local defaults; and the checkout ``--ab-tree`` after it, on the
same emulator) with its RSS sampled every half second. Prints the peak, and the RSS while
reading (the middle 40 % of the run) against the peak, which the run's last steps make. The
walls are not a comparison: the first run on an emulator warms its JVM for the second.
Then, with no emulator, the Python heap (tracemalloc) that writing summary.json takes for a
summary of ``--summary-namespaces`` namespaces (each like a one-entity namespace's): the whole
text at once (``json.dumps``, as before) against ``core/summary.json_pieces``. Run it on a
quiet machine.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Optional

import psutil

from bench.tenants import KIND, PROJECT, Case, seed
from devtools.emulator import DatastoreEmulator
from pipeline.core.summary import json_pieces

REPO = Path(__file__).resolve().parent.parent


def run_ours(n: int, env: dict, tree: Optional[Path]) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-tenant-memory-"))
    cmd = [sys.executable, "-m", "pipeline", "--job", "count_keys", "--project", PROJECT,
           "--params", f"kind={KIND}", "--output", str(out / "out")]
    try:
        started = time.monotonic()
        with open(out / "stderr", "w") as err:
            proc = subprocess.Popen(cmd, cwd=tree or REPO, env=env, stdout=subprocess.DEVNULL,
                                    stderr=err, stdin=subprocess.DEVNULL)
            ps, samples = psutil.Process(proc.pid), []
            while proc.poll() is None:
                try:
                    samples.append((time.monotonic() - started, ps.memory_info().rss / 2**20))
                except psutil.Error:
                    pass
                time.sleep(0.5)
        if proc.returncode != 0:
            raise SystemExit(f"ours (N={n}) failed:\n{(out / 'stderr').read_text()[-2000:]}")
        summary = json.loads((out / "out" / "count_keys" / "summary.json").read_text())
        if summary["totals"]["entities"] != n:
            raise SystemExit(f"ours (N={n}) read {summary['totals']['entities']}, seeded {n}")
        wall = time.monotonic() - started
        reading = [rss for t, rss in samples if 0.3 * wall <= t <= 0.7 * wall]
        return {"n": n, "wall": wall, "peak_mb": max(rss for _, rss in samples),
                "reading_mb": (min(reading), max(reading)) if reading else None,
                "samples": samples}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def summary_heap(namespaces: int) -> dict:
    one = {"entities": 1, "records": 0, "ranges": 1, "samples": 0, "slices": 1, "queries": 1,
           "retries": 0, "errors": 0, "read_seconds": 0.001,
           "counters": {"int_ids": 1, "keys": 1}, "workers": 1}
    summary = {"job": "count_keys", "namespaces": {
        f"t{i:05d}": {**one, "range_entities": {f"t{i:05d}#0": 1},
                      "range_seconds": {f"t{i:05d}#0": 0.001},
                      "range_slices": {f"t{i:05d}#0": 1}} for i in range(namespaces)}}
    out = {}
    for name, write in (
            ("whole text", lambda: len((json.dumps(summary, indent=2, ensure_ascii=False,
                                                   default=str) + "\n").encode("utf-8"))),
            ("in pieces", lambda: sum(len(p) for p in json_pieces(summary)))):
        tracemalloc.start()
        size = write()
        out[name] = (tracemalloc.get_traced_memory()[1] / 1e6, size)
        tracemalloc.stop()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tenant_memory",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--namespaces", default="500,2000,4000")
    ap.add_argument("--ab-tree", metavar="DIR")
    ap.add_argument("--summary-namespaces", type=int, default=20000)
    args = ap.parse_args(argv)
    tree = Path(args.ab_tree).resolve() if args.ab_tree else None
    for n in [int(x) for x in args.namespaces.split(",") if x]:
        emu = DatastoreEmulator(project=PROJECT)
        try:
            emu.start()
            os.environ.update(emu.env())
            seed(Case("memory", n, 1))
            env = {**os.environ, **emu.env()}
            for who, where in [("ours", None)] + ([("ours-B", tree)] if tree else []):
                r = run_ours(n, env, where)
                lo_hi = (f"{r['reading_mb'][0]:.0f} to {r['reading_mb'][1]:.0f} MB"
                         if r["reading_mb"] else "-")
                print(f"[{who}] {n} namespaces x 1: {r['wall']:.1f} s, peak RSS "
                      f"{r['peak_mb']:.0f} MB; while reading (middle 40 % of the run) "
                      f"{lo_hi}", flush=True)
        finally:
            emu.stop()
    if args.summary_namespaces:
        for name, (mb, size) in summary_heap(args.summary_namespaces).items():
            print(f"summary.json of {args.summary_namespaces} namespaces ({size:,} bytes), "
                  f"{name}: Python heap peak {mb:.1f} MB", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
