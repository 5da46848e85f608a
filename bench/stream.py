"""Streaming into BigQuery (issue 6): rows/s of stream_entities on the demo dataset.

    python -m bench.stream [--repeats 3] [--entities 0] [--json out.json]

Starts the Datastore emulator and bqemulator (devtools), seeds the demo dataset (5,165 entities in
5 namespaces; ``--entities N`` seeds N spread like the benchmark's 70/20/9/1 % instead), then runs,
each ``--repeats`` times, as whole processes with the CLI's default local runner (2 workers):

- ``read``: ``count_by_property`` — the same full-entity read with no sink (the baseline);
- ``stream``: ``stream_entities`` into one table per namespace (``items_{namespace}``), in a fresh
  dataset per run; every run's row count is checked against what was seeded.

Prints medians (min-max) of the wall time launch->exit and rows/s over that wall time, and over the
pipeline's own time (the summary's ``seconds``: start of the run to its last step). bqemulator
stores rows in DuckDB in memory, so its insert speed is not BigQuery's: treat the difference
between ``read`` and ``stream`` as our sink's cost plus the emulator's.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from devtools.bq_emulator import BigQueryEmulatorProcess
from devtools.emulator import DatastoreEmulator
from devtools.seed import DEMO_DATASET, NamespaceSpec, seed_dataset

PROJECT = "demo"


def tree_cpu(pid) -> float:
    """CPU seconds of a process and its children (an emulator), or 0 without psutil."""
    try:
        import psutil

        from bench.bench import _cpu_of
    except ImportError:
        return 0.0
    try:
        p = psutil.Process(pid)
        return _cpu_of([p, *p.children(recursive=True)])
    except psutil.Error:
        return 0.0


def run(args: list, env: dict, log: Path) -> float:
    started = time.monotonic()
    with open(log, "wb") as out:
        rc = subprocess.call([sys.executable, "-m", "pipeline", "--project", PROJECT, *args],
                             env=env, stdout=out, stderr=subprocess.STDOUT)
    wall = time.monotonic() - started
    if rc != 0:
        raise SystemExit(f"{' '.join(args)} failed ({rc}); see {log}:\n"
                         + log.read_text(errors="replace")[-3000:])
    return wall


def summary(out: Path, job: str) -> dict:
    return json.loads((out / job / "summary.json").read_text())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--entities", type=int, default=0, help="0: the demo dataset")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    spec = DEMO_DATASET if not a.entities else [
        NamespaceSpec(n, max(1, round(a.entities * f)))
        for n, f in (("", 0.7), ("tenant-a", 0.2), ("tenant.b", 0.09), ("tenant_c", 0.01))]
    total = sum(s.count for s in spec)
    work = Path(tempfile.mkdtemp(prefix="bench-stream-"))
    with DatastoreEmulator() as ds, BigQueryEmulatorProcess(PROJECT, work / "bq") as bq:
        env = {**os.environ, **ds.env(), "NO_GCE_CHECK": "true"}
        env.pop("BIGQUERY_EMULATOR_HOST", None)
        os.environ.update(ds.env())
        seed_dataset(PROJECT, spec)
        results: dict = {"read": [], "stream": []}
        for i in range(a.repeats):
            out = work / f"read-{i}"
            wall = run(["--job", "count_by_property", "--output", str(out)], env,
                       work / f"read-{i}.log")
            s = summary(out, "count_by_property")
            assert s["totals"]["entities"] == total, s["totals"]
            results["read"].append((wall, s["seconds"]))
            dataset = f"bench_{uuid.uuid4().hex[:8]}"
            out = work / f"stream-{i}"
            bq_cpu = tree_cpu(bq.proc.pid)
            wall = run(["--job", "stream_entities", "--output", str(out),
                        "--bigquery_table", f"{dataset}.items_{{namespace}}",
                        "--bigquery_emulator_host", bq.host], env, work / f"stream-{i}.log")
            s = summary(out, "stream_entities")
            rows = s["totals"]["counters"].get("bigquery_rows", 0)
            if rows != total or s["totals"]["counters"].get("bigquery_rejected", 0):
                raise SystemExit(f"stream run {i}: {rows} rows of {total}; {s['totals']}")
            landed = count_rows(bq, dataset)
            if landed != total:
                raise SystemExit(f"stream run {i}: {landed} rows in BigQuery, {total} seeded")
            results["stream"].append((wall, s["seconds"]))
            bq_cpu = tree_cpu(bq.proc.pid) - bq_cpu
            results.setdefault("bq_cpu", []).append(bq_cpu)
            print(f"run {i + 1}/{a.repeats}: read {results['read'][-1][0]:.1f} s, "
                  f"stream {wall:.1f} s (bqemulator used {bq_cpu:.1f} s of CPU)", flush=True)
    report = {"entities": total, "namespaces": len(spec), "repeats": a.repeats}
    print(f"\n{total} entities in {len(spec)} namespaces, {a.repeats} runs each, "
          "median (min-max):")
    print(f"{'run':<8} {'wall s':>18} {'rows/s (wall)':>22} {'rows/s (pipeline)':>22}")
    bq_cpu = results.pop("bq_cpu")
    for name, rs in results.items():
        walls = [w for w, _ in rs]
        inner = [p for _, p in rs]
        def fmt(xs, f=lambda x: x):
            v = sorted(f(x) for x in xs)
            return f"{statistics.median(v):.0f} ({v[0]:.0f}-{v[-1]:.0f})"
        print(f"{name:<8} {fmt(walls, lambda x: x * 1):>18} {fmt(walls, lambda w: total / w):>22} "
              f"{fmt(inner, lambda p: total / p):>22}")
        report[name] = {"wall_s": walls, "pipeline_s": inner,
                        "rows_per_s_wall": statistics.median(total / w for w in walls),
                        "rows_per_s_pipeline": statistics.median(total / p for p in inner)}
    print(f"bqemulator CPU per stream run: median {statistics.median(bq_cpu):.1f} s "
          f"({statistics.median(bq_cpu) / total * 1000:.2f} s per 1,000 rows)")
    report["bqemulator_cpu_s"] = bq_cpu
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2))
    return 0


def count_rows(bq: BigQueryEmulatorProcess, dataset: str) -> int:
    from pipeline.core.retry import RetryPolicy
    from pipeline.sinks.bigquery.service import client, retry

    c = client(PROJECT, bq.host)
    r = retry(RetryPolicy(deadline=30))
    n = 0
    for t in c.list_tables(f"{PROJECT}.{dataset}", retry=r, timeout=10):
        n += sum(1 for _ in c.list_rows(t, retry=r, timeout=10))
    return n


if __name__ == "__main__":
    sys.exit(main())
