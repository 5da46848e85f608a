"""Benchmark: an all-kinds export of a database of many small (namespace, kind) pairs.

    .venv/bin/python -m bench.kinds [--pairs 200] [--repeats 2] [--json out.json]

The dataset: ``--pairs`` pairs (namespaces x kinds, 8 kinds per namespace), each of 20 to 2,000
entities (log-uniform, seeded: most pairs are small). Contenders, each a whole process measured
as ``bench.bench`` measures (wall, CPU of the process tree, peak RSS):

- ours: ``export_keys kind=* --output`` (every kind of every namespace, listed at run time);
- peer: Beam's ``ReadFromDatastore``, once per pair, flattened and counted (what a user does
  today: one read per kind and namespace, each named up front); the same local runner.

Reported: entities/s, and queries per pair (ours: the reading queries from its summary, plus the
planning queries: one ``__kind__`` listing per namespace and one scatter query per pair; peer:
estimated from Beam's splitter, see the note printed). Target: ours >= 2x the peer's entities/s.
Run it on a quiet machine (no tests, no other benchmark).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import random
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.bench import (
    MB,
    BenchError,
    _tail,
    check_ok,
    machine,
    measure,
    print_machine,
    set_subreaper,
)
from devtools.emulator import DatastoreEmulator
from devtools.seed import NamespaceSpec, seed_dataset

PROJECT = "bench-kinds"
KINDS_PER_NAMESPACE = 8


def pair_sizes(pairs: int, lo: int, hi: int, seed: int = 14) -> dict:
    """(namespace, kind) -> entities, log-uniform in [lo, hi]."""
    rng = random.Random(seed)
    namespaces = max(1, math.ceil(pairs / KINDS_PER_NAMESPACE))
    out = {}
    for i in range(pairs):
        ns = "" if i // KINDS_PER_NAMESPACE == 0 else f"tenant-{i // KINDS_PER_NAMESPACE:03d}"
        kind = f"Kind{i % KINDS_PER_NAMESPACE}"
        out[(ns, kind)] = int(round(math.exp(rng.uniform(math.log(lo), math.log(hi)))))
    assert len({ns for ns, _ in out}) == namespaces
    return out


def seed(sizes: dict) -> float:
    started = time.monotonic()
    by_kind: dict = {}
    for (ns, kind), n in sizes.items():
        by_kind.setdefault(kind, []).append(NamespaceSpec(ns, n))
    for i, (kind, spec) in enumerate(sorted(by_kind.items())):
        seed_dataset(PROJECT, spec, kind=kind, seed=i, with_children=False)
    return time.monotonic() - started


def run_ours(env, log_dir, emu, label, expected: int, sample_s: float) -> dict:
    out_dir = Path(tempfile.mkdtemp(prefix="bench-kinds-", dir=log_dir))
    cmd = [sys.executable, "-m", "pipeline", "--job", "export_keys", "--project", PROJECT,
           "--params", "kind=*", "--output", str(out_dir)]
    try:
        m = measure(cmd, env, log_dir, label, emu, sample_s)
        check_ok(m, label)
        summary = json.loads((out_dir / "export_keys" / "summary.json").read_text())
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    t = summary["totals"]
    if t["entities"] != expected:
        raise BenchError(f"{label}: read {t['entities']} entities, expected {expected}")
    units = sum(len(n.get("kinds", {})) for n in summary["namespaces"].values())
    namespaces = len(summary["namespaces"])
    planning = namespaces + units  # a __kind__ listing per namespace, a scatter query per unit
    return {"entities": t["entities"], "wall": m.wall, "cpu": m.cpu,
            "peak_rss_mb": m.peak_rss / MB, "units": units, "ranges": t["ranges"],
            "read_queries": t["queries"], "planning_queries": planning,
            "queries_per_pair": (t["queries"] + planning) / units}


def run_peer(env, log_dir, emu, label, sizes: dict, expected: int, sample_s: float) -> dict:
    pairs = sorted([ns, kind] for ns, kind in sizes)
    cmd = [sys.executable, "-m", "bench.peer", "--project", PROJECT,
           "--pairs", json.dumps(pairs)]
    m = measure(cmd, env, log_dir, label, emu, sample_s)
    check_ok(m, label)
    got = json.loads(m.stdout.strip().splitlines()[-1])
    if got["entities"] < expected:
        raise BenchError(f"{label}: read {got['entities']} entities, expected {expected}\n"
                         f"{_tail(m.stderr_path)}")
    # More than there are: Beam's splitter cuts at keys in its own order, not the emulator's
    # (names outside the BMP), so some entities are read twice. Reported, and the rate is
    # counted over the entities there are (not the duplicates).
    return {"entities": expected, "read": got["entities"],
            "duplicates": got["entities"] - expected, "wall": m.wall, "cpu": m.cpu,
            "peak_rss_mb": m.peak_rss / MB, "queries_per_pair": None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.kinds",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--min", type=int, default=20, help="smallest pair (default 20)")
    ap.add_argument("--max", type=int, default=2000, help="largest pair (default 2000)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", help="write the results as JSON to this file")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(KeyboardInterrupt()))
    set_subreaper()
    info = machine()
    print_machine(info)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-kinds-logs-"))
    emu = DatastoreEmulator(project=PROJECT)
    report = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": info, "pairs": args.pairs, "runs": []}
    try:
        emu.start()
        os.environ.update(emu.env())
        env = {**os.environ, **emu.env(), "PYTHONUNBUFFERED": "1"}
        sizes = pair_sizes(args.pairs, args.min, args.max)
        expected = sum(sizes.values())
        seconds = seed(sizes)
        print(f"seeded {expected} entities in {len(sizes)} (namespace, kind) pairs over "
              f"{len({ns for ns, _ in sizes})} namespaces in {seconds:.0f} s; sizes: min "
              f"{min(sizes.values())}, median {statistics.median(sizes.values()):.0f}, max "
              f"{max(sizes.values())}", flush=True)
        report.update(entities=expected, sizes={f"{ns}/{k}": n for (ns, k), n in sizes.items()})
        rows: dict = {"ours": [], "peer": []}
        for rep in range(args.repeats):  # interleaved, so drift hits both alike
            for name in ("ours", "peer"):
                label = f"{name}-{rep + 1}"
                r = (run_ours(env, log_dir, emu, label, expected, 0.05) if name == "ours" else
                     run_peer(env, log_dir, emu, label, sizes, expected, 0.05))
                rows[name].append(r)
                report["runs"].append({"row": name, "repeat": rep + 1, **r})
                print(f"[{label}] {r['entities']} entities in {r['wall']:.1f} s "
                      f"({r['entities'] / r['wall']:.0f}/s), CPU {r['cpu']:.1f} s, peak RSS "
                      f"{r['peak_rss_mb']:.0f} MB" + (f", {r['queries_per_pair']:.2f} queries "
                                                       f"per pair" if r.get("queries_per_pair")
                                                       else "")
                      + (f", {r['duplicates']} entities read twice" if r.get("duplicates")
                         else ""), flush=True)
        eps = {k: statistics.median(r["entities"] / r["wall"] for r in v)
               for k, v in rows.items()}
        report["median_eps"] = eps
        report["ratio"] = eps["ours"] / eps["peer"]
        print()
        print(f"| contender | entities/s (median of {args.repeats}) | CPU s | peak RSS MB "
              "| queries per pair |")
        print("| --- | --- | --- | --- | --- |")
        for k, v in rows.items():
            qpp = statistics.median(r["queries_per_pair"] for r in v) if v[0].get(
                "queries_per_pair") else None
            print(f"| {k} | {eps[k]:.0f} | {statistics.median(r['cpu'] for r in v):.1f} | "
                  f"{statistics.median(r['peak_rss_mb'] for r in v):.0f} | "
                  f"{'%.2f' % qpp if qpp else 'n/a'} |")
        print(f"\nours / peer: {report['ratio']:.2f}x (target >= 2x): "
              f"{'MET' if report['ratio'] >= 2 else 'NOT MET'}")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
        return 0
    finally:
        emu.stop()
        shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
