"""Benchmark (issue 17): thousands of tenants, the mapper against a bare client.

    .venv/bin/python -m bench.tenants [--cases wide,mixed,scale] [--namespaces 2000]
        [--per-namespace 5] [--big 20000] [--scale-namespaces 20000] [--threads 2,4,8]
        [--in-flight 1,2,4,8] [--in-flight-cases wide] [--ab-tree DIR] [--json out.json]

Cases, each on a fresh emulator, seeded, warmed up with one unmeasured bare read, then measured
(every run a whole process, as ``bench.bench`` measures it: wall time, CPU of the process tree,
peak RSS summed over the tree, and per process):

- wide: ``--namespaces`` namespaces of ``--per-namespace`` entities (2,000 x 5);
- mixed: the same, plus one namespace of ``--big`` entities (20,000);
- scale: ``--scale-namespaces`` namespaces of one entity (20,000 x 1).

Contenders: the bare client (``bench.tenant_client``: one keys-only query per namespace, the big
one in narrow ranges) with each of ``--threads``, and ours, ``count_keys --output`` with the local
defaults (``ours``: ``--reads_in_flight`` 4); in the ``--in-flight-cases`` also ours with each other
``--in-flight`` value (``ours-rif1``, ...), to choose the default. Targets: wide and mixed, ours within 1.25x of the best bare run; mixed, the big
namespace split and balanced (max range <= 1.5x the mean); scale, time per namespace within 1.2x
and peak RSS within 1.15x of the wide case. Run it on a quiet machine (no tests, no other bench).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from google.cloud import datastore

from bench.bench import (
    MB,
    BenchError,
    Measurement,
    _last_json,
    _tail,
    check_ok,
    machine,
    measure,
    print_machine,
    set_subreaper,
)
from devtools.emulator import DatastoreEmulator
from devtools.seed import NamespaceSpec, seed_dataset

PROJECT = "bench-tenants"
KIND = "Item"
BIG = "big-tenant"
#: --reads_in_flight's default (pipeline/launch/options.py): the plain "ours" row.
DEFAULT_IN_FLIGHT = 4


@dataclass
class Case:
    name: str
    namespaces: int  # tiny ones
    per_namespace: int
    big: int = 0  # entities of the one big namespace (0: none)

    @property
    def entities(self) -> int:
        return self.namespaces * self.per_namespace + self.big

    @property
    def all_namespaces(self) -> int:
        return self.namespaces + (1 if self.big else 0)

    def describe(self) -> str:
        big = f" + one of {self.big}" if self.big else ""
        return f"{self.namespaces} namespaces x {self.per_namespace}{big}"


@dataclass
class Row:
    case: str
    who: str  # "bare-N" or "ours"
    entities: int
    m: Measurement
    extra: dict = field(default_factory=dict)

    @property
    def eps(self) -> float:
        return self.entities / self.m.wall


def tenant(i: int) -> str:
    return f"t{i:05d}"


def seed(case: Case, threads: int = 8) -> float:
    """Tiny namespaces (half integer ids, half names) in parallel; the big one with
    ``devtools.seed`` (mixed ids and names, payloads)."""
    started = time.monotonic()
    local = threading.local()

    def one(i: int) -> None:
        c = getattr(local, "client", None)
        if c is None:
            c = local.client = datastore.Client(project=PROJECT)
        ns = tenant(i)
        entities = []
        for j in range(case.per_namespace):
            key = c.key(KIND, j + 1 if j % 2 == 0 else f"item-{j}", namespace=ns)
            e = datastore.Entity(key)
            e.update({"n": j, "tenant": ns})
            entities.append(e)
        c.put_multi(entities)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(case.namespaces)))
    if case.big:
        seed_dataset(PROJECT, [NamespaceSpec(BIG, case.big)], kind=KIND, with_children=False)
    return time.monotonic() - started


def run_bare(case: Case, env, log_dir, emu, threads: int, label: str,
             sample_s: float) -> Row:
    cmd = [sys.executable, "-m", "bench.tenant_client", "--project", PROJECT, "--kind", KIND,
           "--threads", str(threads)] + (["--big", BIG] if case.big else [])
    m = measure(cmd, env, log_dir, label, emu, sample_s)
    check_ok(m, label)
    res = _last_json(m, label)
    if res["entities"] != case.entities or res["namespaces"] != case.all_namespaces:
        raise BenchError(f"{label}: read {res['entities']} entities in {res['namespaces']} "
                         f"namespaces, seeded {case.entities} in {case.all_namespaces}")
    return Row(case.name, f"bare-{threads}", res["entities"], m,
               extra={"queries": res["queries"]})


def balance(range_entities: dict) -> Optional[float]:
    sizes = list(range_entities.values())
    if len(sizes) < 2 or not sum(sizes):
        return None
    return max(sizes) / (sum(sizes) / len(sizes))


def run_ours(case: Case, env, log_dir, emu, label: str, sample_s: float,
             extra_args: list, tree: Optional[Path] = None) -> Row:
    """``tree``: run the code of that checkout (a ``-B`` row of ``--ab-tree``)."""
    out_dir = Path(tempfile.mkdtemp(prefix="bench-tenants-", dir=log_dir))
    cmd = [sys.executable, "-m", "pipeline", "--job", "count_keys", "--project", PROJECT,
           "--params", f"kind={KIND}", "--output", str(out_dir), *extra_args]
    try:
        m = measure(cmd, env, log_dir, label, emu, sample_s, cwd=tree)
        check_ok(m, label)
        path = out_dir / "count_keys" / "summary.json"
        if not path.exists():
            raise BenchError(f"{label}: no {path}\n{_tail(m.stderr_path)}")
        summary = json.loads(path.read_text())
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    t = summary["totals"]
    if t["entities"] != case.entities or len(summary["namespaces"]) != case.all_namespaces:
        raise BenchError(f"{label}: read {t['entities']} entities in "
                         f"{len(summary['namespaces'])} namespaces, seeded {case.entities} in "
                         f"{case.all_namespaces}")
    extra = {"ranges": t["ranges"], "slices": t["slices"], "queries": t["queries"],
             "samples": t["samples"], "workers": t["workers"],
             "summary_seconds": summary["seconds"]}
    if case.big:
        big = summary["namespaces"][BIG]
        extra.update(big_ranges=big["ranges"], big_balance=balance(big["range_entities"]),
                     big_entities=big["entities"])
    return Row(case.name, "ours", t["entities"], m, extra=extra)


def processes(m: Measurement) -> dict:
    """Peak RSS (MB) of the launcher and of the largest worker (None: the run was in one
    process, as every local run is now)."""
    launcher = next((p for p in m.per_process if "-m pipeline" in p["cmd"]), None)
    workers = [p for p in m.per_process if "sdk_worker_main" in p["cmd"]]
    return {"launcher_mb": launcher["peak_rss_mb"] if launcher else None,
            "worker_mb": max((p["peak_rss_mb"] for p in workers), default=None),
            "workers": len(workers)}


def run_case(case: Case, args, log_dir: Path, report: dict) -> list:
    emu = DatastoreEmulator(project=PROJECT)
    rows = []
    try:
        emu.start()
        os.environ.update(emu.env())
        env = {**os.environ, **emu.env(), "PYTHONUNBUFFERED": "1"}
        seconds = seed(case)
        print(f"[{case.name}] seeded {case.entities} entities ({case.describe()}) in "
              f"{seconds:.0f} s", flush=True)
        threads = [int(t) for t in args.threads.split(",")]
        for w in range(args.warmup):  # the emulator's JVM warms up
            run_bare(case, env, log_dir, emu, max(threads), f"{case.name}-warmup-{w + 1}",
                     args.sample_ms / 1000)
        for rep in range(args.repeats):
            for t in threads:
                rows.append(run_bare(case, env, log_dir, emu, t,
                                     f"{case.name}-bare{t}-{rep + 1}", args.sample_ms / 1000))
                _print_row(rows[-1])
            rows.append(run_ours(case, env, log_dir, emu, f"{case.name}-ours-{rep + 1}",
                                 args.sample_ms / 1000, args.ours_args))
            _print_row(rows[-1])
            if args.ab_tree:  # the same emulator, interleaved: its warm-up hits both alike
                row = run_ours(case, env, log_dir, emu, f"{case.name}-ours-B-{rep + 1}",
                               args.sample_ms / 1000, args.ours_args,
                               tree=Path(args.ab_tree).resolve())
                row.who = "ours-B"
                rows.append(row)
                _print_row(row)
            if case.name not in args.in_flight_cases:
                continue
            for n in args.in_flight:
                if n == DEFAULT_IN_FLIGHT:
                    continue  # that is "ours"
                row = run_ours(case, env, log_dir, emu, f"{case.name}-ours-rif{n}-{rep + 1}",
                               args.sample_ms / 1000,
                               args.ours_args + ["--reads_in_flight", str(n)])
                row.who = f"ours-rif{n}"
                rows.append(row)
                _print_row(row)
    finally:
        emu.stop()
    for r in rows:
        report["runs"].append({"case": r.case, "who": r.who, "entities": r.entities,
                               "wall": r.m.wall, "cpu": r.m.cpu,
                               "peak_rss_mb": r.m.peak_rss / MB, **processes(r.m),
                               "emulator_cpu": r.m.emulator_cpu, "other_cpu": r.m.other_cpu,
                               **r.extra})
    return rows


def _print_row(r: Row) -> None:
    p = processes(r.m)
    more = ""
    if r.who.startswith("ours"):
        workers = (f", largest worker {p['worker_mb']:.0f} MB" if p["worker_mb"] is not None
                   else " (in process)")
        more = (f", launcher {p['launcher_mb']:.0f} MB{workers}, "
                f"{r.extra['queries']} read queries, {r.extra['samples']} samples")
        if "big_balance" in r.extra:
            b = r.extra["big_balance"]
            more += (f", big: {r.extra['big_ranges']} ranges, balance "
                     + (f"{b:.2f}" if b is not None else "-"))
    print(f"  [{r.case} {r.who}] {r.entities} entities in {r.m.wall:.1f} s "
          f"({r.eps:.0f}/s), CPU {r.m.cpu:.1f} s, peak RSS {r.m.peak_rss / MB:.0f} MB, other "
          f"load {r.m.other_cpu / r.m.wall:.2f} cores{more}", flush=True)


def median(values: list) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def summarise(rows: list, cases: dict) -> tuple:
    """The table (markdown) and the targets' lines."""
    by: dict = {}
    for r in rows:
        by.setdefault((r.case, r.who), []).append(r)
    lines = ["| case | run | wall s | entities/s | s per 1k namespaces | CPU s | peak RSS MB "
             "(launcher / worker) | vs best bare |", "| --- | --- | --- | --- | --- | --- | --- "
             "| --- |"]
    best: dict = {}
    for (case, who), rs in by.items():
        if who.startswith("bare"):
            w = median([r.m.wall for r in rs])
            if case not in best or w < best[case][1]:
                best[case] = (who, w)
    ours: dict = {}
    for (case, who), rs in sorted(by.items(), key=lambda kv: (list(cases).index(kv[0][0]),
                                                              kv[0][1].startswith("ours"), kv[0][1])):
        w = median([r.m.wall for r in rs])
        rss = median([r.m.peak_rss / MB for r in rs])
        p = processes(rs[0].m)
        n = cases[case].all_namespaces
        vs = f"{w / best[case][1]:.2f}" if case in best else "-"
        split = (f"{p['launcher_mb']:.0f} / {p['worker_mb']:.0f}" if who.startswith("ours")
                 and p["launcher_mb"] and p["worker_mb"] is not None else "-")
        lines.append(f"| {case} | {who} | {w:.1f} | {rs[0].entities / w:.0f} | "
                     f"{w / n * 1000:.1f} | {median([r.m.cpu for r in rs]):.1f} | {rss:.0f} "
                     f"({split}) | {vs} |")
        if who == "ours":
            ours[case] = {"wall": w, "rss": rss, "per_ns": w / n, "row": rs[0]}
    checks = []

    def check(ok: bool, text: str) -> None:
        checks.append(f"  [{'met' if ok else 'MISSED'}] {text}")

    for case in ("wide", "mixed"):
        if case in ours and case in best:
            r = ours[case]["wall"] / best[case][1]
            check(r <= 1.25, f"{case}: ours within 1.25x of the best bare run ({best[case][0]}): "
                  f"{r:.2f}x")
    if "mixed" in ours:
        e = ours["mixed"]["row"].extra
        b = e.get("big_balance")
        check(e.get("big_ranges", 0) > 1 and b is not None and b <= 1.5,
              f"mixed: the big namespace split ({e.get('big_ranges')} ranges) and balanced "
              f"(max range / mean {b if b is None else round(b, 2)} <= 1.5)")
    if "scale" in ours and "wide" in ours:
        r = ours["scale"]["per_ns"] / ours["wide"]["per_ns"]
        check(r <= 1.2, f"scale: time per namespace within 1.2x of wide: {r:.2f}x")
        r = ours["scale"]["rss"] / ours["wide"]["rss"]
        check(r <= 1.15, f"scale: peak RSS within 1.15x of wide: {r:.2f}x")
    return "\n".join(lines), checks


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.tenants",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="wide,mixed,scale")
    ap.add_argument("--namespaces", type=int, default=2000, help="tiny namespaces (wide, mixed)")
    ap.add_argument("--per-namespace", type=int, default=5)
    ap.add_argument("--big", type=int, default=20000, help="entities of mixed's big namespace")
    ap.add_argument("--scale-namespaces", type=int, default=20000)
    ap.add_argument("--threads", default="2,4,8", help="the bare client's thread counts")
    ap.add_argument("--in-flight", default="1,2,4,8",
                    help="ours' --reads_in_flight values measured in the --in-flight-cases")
    ap.add_argument("--in-flight-cases", default="wide",
                    help="cases where each --in-flight value is measured ('' for none)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=1, help="unmeasured bare reads per case")
    ap.add_argument("--sample-ms", type=float, default=50.0)
    ap.add_argument("--ours-args", default="", help="extra options for ours (one string)")
    ap.add_argument("--json", help="write the results as JSON to this file")
    ap.add_argument("--ab-tree", metavar="DIR",
                    help="also run ours from the checkout DIR (rows 'ours-B'), after each "
                         "'ours' on the same emulator: a before/after in one run")
    args = ap.parse_args(argv)
    args.ours_args = args.ours_args.split()
    args.in_flight = [int(n) for n in args.in_flight.split(",") if n]
    args.in_flight_cases = [c for c in args.in_flight_cases.split(",") if c]
    signal.signal(signal.SIGTERM, lambda s, f: (_ for _ in ()).throw(KeyboardInterrupt()))
    set_subreaper()
    info = machine()
    print_machine(info)
    all_cases = {"wide": Case("wide", args.namespaces, args.per_namespace),
                 "mixed": Case("mixed", args.namespaces, args.per_namespace, args.big),
                 "scale": Case("scale", args.scale_namespaces, 1)}
    cases = {k: all_cases[k] for k in args.cases.split(",")}
    report = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": info, "args": vars(args), "runs": []}
    log_dir = Path(tempfile.mkdtemp(prefix="bench-tenants-logs-"))
    rows: list = []
    try:
        for case in cases.values():
            rows += run_case(case, args, log_dir, report)
        text, checks = summarise(rows, cases)
        print()
        print(text)
        print("\ntargets (issue 17):")
        print("\n".join(checks))
        for case in cases:
            a = [r for r in rows if r.case == case and r.who == "ours"]
            b = [r for r in rows if r.case == case and r.who == "ours-B"]
            if a and b:
                ca, cb = median([r.m.cpu for r in a]), median([r.m.cpu for r in b])
                wa, wb = median([r.m.wall for r in a]), median([r.m.wall for r in b])
                print(f"A/B {case}: CPU {ca:.1f} / {cb:.1f} s = {ca / cb:.2f}; wall {wa:.1f} / "
                      f"{wb:.1f} s = {wa / wb:.2f}")
        noisy = [r for r in rows if r.m.other_cpu / r.m.wall > 0.15]
        if noisy:
            print("WARNING: other processes were busy during "
                  + ", ".join(f"{r.case} {r.who} ({r.m.other_cpu / r.m.wall:.2f} cores)"
                              for r in noisy) + ": numbers are noisy")
        report.update(table=text, targets=checks)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2))
        return 0
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
