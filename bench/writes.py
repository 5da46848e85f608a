"""Benchmark: writing back. ``rename_property`` (category -> genre) over the bench's dataset
(``bench.bench``: ~300 B entities in 4 namespaces of 70/20/9/1 %), whole processes, one run each
(``--repeats`` for more), the data re-seeded before each (seeding is not timed):

- limit: the bare client reading narrow key ranges and putting the renamed entities back in
  batches of 500, 2 threads (``bench.limit_writes``): no lookup, no undo log;
- peer: Beam's ``ReadFromDatastore -> Map -> WriteToDatastore(throttle_rampup=False)``, one read
  per namespace, the same local runner (``bench.peer_writes``);
- ours: ``python -m pipeline --job rename_property --writes=blind|transactional --output DIR``
  (the undo log on, as by default), and blind with ``--undo_log=false``.

Each run is checked afterwards (not timed): every entity has ``genre`` and no ``category``.
Targets (issue 13): blind >= 0.9x the limit and ahead of the peer; transactional's cost is
reported as a ratio to blind. Run it on a quiet machine (no tests, no other benchmark):

    .venv/bin/python -m bench.writes [--entities 30000] [--repeats 1] [--json out.json]
        [--ab-tree DIR] [--round-trip-ms MS]

``--round-trip-ms``: every contender reaches the emulator through the test suite's fault proxy
(``tests.support.faultproxy``, on 127.0.0.1) with each chunk delayed half of MS each way, as a
network between a worker and Datastore would (seeding and checks go direct): on the bare
emulator a call costs well under a millisecond, so calls saved do not show.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import statistics
import sys
import tempfile
from pathlib import Path

from google.cloud import datastore

from bench.bench import (
    KIND,
    MB,
    PROJECT,
    BenchError,
    _tail,
    check_ok,
    label,
    machine,
    measure,
    print_machine,
    seed,
    set_subreaper,
)
from devtools.emulator import DatastoreEmulator

OLD, NEW = "category", "genre"
CONTENDERS = ("limit", "peer", "ours-blind", "ours-blind-no-undo", "ours-transactional")


def verify(namespaces: list, expected: int, name: str) -> None:
    """Every entity renamed, none lost (a full scan, not timed)."""
    renamed = 0
    for ns in namespaces:
        c = datastore.Client(project=PROJECT, namespace=ns or None)
        for e in c.query(kind=KIND).fetch():
            if OLD in e or NEW not in e:
                raise BenchError(f"{name}: {e.key.flat_path} in {label(ns)} was not renamed")
            renamed += 1
    if renamed != expected:
        raise BenchError(f"{name}: {renamed} entities after the run, expected {expected}")


def command(name: str, namespaces: list, out_dir: Path) -> list:
    py = sys.executable
    if name == "limit":
        return [py, "-m", "bench.limit_writes", "--project", PROJECT, "--from", OLD, "--to", NEW]
    if name == "peer":
        return [py, "-m", "bench.peer_writes", "--project", PROJECT, "--namespaces",
                json.dumps(namespaces), "--from", OLD, "--to", NEW]
    mode = "transactional" if name.endswith("transactional") else "blind"
    cmd = [py, "-m", "pipeline", "--job", "rename_property", "--project", PROJECT, "--params",
           f"kind={KIND},from={OLD},to={NEW}", "--output", str(out_dir), f"--writes={mode}"]
    return cmd + (["--undo_log=false"] if name.endswith("no-undo") else [])


def run(name: str, rep: int, env, log_dir, emu, total: int, tree=None) -> dict:
    """``tree``: run ours from that checkout (a ``-B`` row of ``--ab-tree``)."""
    emu.reset()
    expected, _ = seed(emu, total)
    n = sum(expected.values())
    out_dir = Path(tempfile.mkdtemp(prefix="bench-writes-", dir=log_dir))
    tag = f"{name}{'-B' if tree else ''}-{rep}"
    try:
        m = measure(command(name, sorted(expected), out_dir), env, log_dir, tag, emu, 0.05,
                    cwd=tree)
        check_ok(m, tag)
        if name.startswith("ours"):
            runs = list((out_dir / "rename_property" / "runs").glob("*/summary.json"))
            s = json.loads(runs[0].read_text())
            changed = s["writes"]["counts"]["changed"]
            if changed != n:
                raise BenchError(f"{tag}: changed {changed}, expected {n}\n"
                                 f"{_tail(m.stderr_path)}")
        else:
            got = json.loads(m.stdout.strip().splitlines()[-1])
            if got.get("written", got["entities"]) < n:
                raise BenchError(f"{tag}: wrote {got}, expected {n}\n{_tail(m.stderr_path)}")
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    verify(sorted(expected), n, tag)
    r = {"entities": n, "wall": m.wall, "cpu": m.cpu, "peak_rss_mb": m.peak_rss / MB,
         "emulator_cpu": m.emulator_cpu}
    print(f"[{tag}] {n} entities in {m.wall:.1f} s ({n / m.wall:.0f}/s), CPU {m.cpu:.1f} s, "
          f"peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    return r


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.writes",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--entities", type=int, default=30000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--only", default=",".join(CONTENDERS))
    ap.add_argument("--json", help="write the results as JSON to this file")
    ap.add_argument("--ab-tree", metavar="DIR",
                    help="also run ours' rows from the checkout DIR (rows '...-B'), interleaved "
                         "with this one's: a before/after in one run")
    ap.add_argument("--round-trip-ms", type=float, default=0.0,
                    help="the measured runs reach the emulator through a proxy that delays "
                         "each chunk half of this each way (0: direct)")
    args = ap.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    bad = sorted(set(names) - set(CONTENDERS))
    if bad:
        ap.error(f"unknown contenders {bad}; choose from {', '.join(CONTENDERS)}")
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(KeyboardInterrupt()))
    set_subreaper()
    info = machine()
    print_machine(info)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-writes-logs-"))
    emu = DatastoreEmulator(project=PROJECT)
    report = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": info, "entities": args.entities, "runs": []}
    proxy = None
    try:
        emu.start()
        os.environ.update(emu.env())
        env = {**os.environ, **emu.env(), "PYTHONUNBUFFERED": "1"}
        if args.round_trip_ms > 0:
            from tests.support.faultproxy import Fault, FaultProxy
            port = int(emu.env()["DATASTORE_EMULATOR_HOST"].rsplit(":", 1)[1])
            proxy = FaultProxy("127.0.0.1", port).start()
            proxy.set_fault(Fault("delay", delay=args.round_trip_ms / 2000, limit=10**9,
                                  duration=7 * 24 * 3600.0))
            env["DATASTORE_EMULATOR_HOST"] = proxy.host
            report["round_trip_ms"] = args.round_trip_ms
            print(f"the measured runs reach the emulator through {proxy.host}, each chunk "
                  f"delayed {args.round_trip_ms / 2:g} ms each way", flush=True)
        tree = Path(args.ab_tree).resolve() if args.ab_tree else None
        rows_of = [(n, None) for n in names] + [(n + "-B", tree) for n in names
                                               if tree is not None and n.startswith("ours")]
        rows: dict = {n: [] for n, _ in rows_of}
        for rep in range(1, args.repeats + 1):  # interleaved, so drift hits all alike
            for name, where in rows_of:
                r = run(name.removesuffix("-B"), rep, env, log_dir, emu, args.entities, where)
                rows[name].append(r)
                report["runs"].append({"row": name, "repeat": rep, **r})
        eps = {k: statistics.median(r["entities"] / r["wall"] for r in v) for k, v in rows.items()}
        cpu = {k: statistics.median(r["cpu"] / r["entities"] * 1000 for r in v)
               for k, v in rows.items()}
        report["median_eps"], report["cpu_per_1k"] = eps, cpu
        print("\n| contender | entities/s | wall s | CPU s / 1k | peak RSS MB | / limit |")
        print("| --- | --- | --- | --- | --- | --- |")
        for k, v in rows.items():
            ratio = eps[k] / eps["limit"] if "limit" in eps else float("nan")
            print(f"| {k} | {eps[k]:.0f} | {statistics.median(r['wall'] for r in v):.1f} | "
                  f"{cpu[k]:.2f} | {statistics.median(r['peak_rss_mb'] for r in v):.0f} | "
                  f"{ratio:.2f} |")
        if {"ours-blind", "limit", "peer"} <= set(eps):
            b = eps["ours-blind"]
            print(f"\nblind / limit {b / eps['limit']:.2f} (target >= 0.9): "
                  f"{'MET' if b >= 0.9 * eps['limit'] else 'NOT MET'}; blind / peer "
                  f"{b / eps['peer']:.2f} (target > 1): {'MET' if b > eps['peer'] else 'NOT MET'}")
        if {"ours-blind", "ours-transactional"} <= set(eps):
            print(f"transactional / blind: {eps['ours-transactional'] / eps['ours-blind']:.2f} "
                  "of blind's entities/s")
        for k in rows:
            if k.endswith("-B") and k[:-2] in rows:
                a, b = rows[k[:-2]], rows[k]
                print(f"A/B {k[:-2]}: CPU {statistics.median(r['cpu'] for r in a):.1f} / "
                      f"{statistics.median(r['cpu'] for r in b):.1f} s = "
                      f"{statistics.median(r['cpu'] for r in a) / statistics.median(r['cpu'] for r in b):.2f}"
                      f"; wall {statistics.median(r['wall'] for r in a):.1f} / "
                      f"{statistics.median(r['wall'] for r in b):.1f} s")
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
        return 0
    finally:
        if proxy is not None:
            proxy.stop()
        emu.stop()
        shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
