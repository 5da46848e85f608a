"""Benchmark (issue 25): every row of the cost-per-entity targets in one run.

    .venv/bin/python -m bench.cost [--json out.json] [--write-entities 30000] [--quick]

The parts, one after another, each on its own emulator, each the bench that measures it alone:

1. reading and exporting, ``bench.bench --only limit,peer,full,export,exports``: the bare client,
   Beam's ``ReadFromDatastore``, the peer writing JSON lines with ``WriteToText``, ours
   ``count_by_property``, ``export_entities``, ``backup_entities`` and ``export_keys full=true``,
   3 interleaved runs at 30,000 entities, the start-up rows, then every row once at 3x;
2. writing back, ``bench.writes``: the bare client's read + put, Beam's ``WriteToDatastore``, ours
   blind (with and without the undo log) and transactional, 3 interleaved runs;
3. many tenants, ``bench.tenants --cases wide``: 2,000 namespaces x 5 entities, the bare client's
   one query per namespace (2 threads) against ours, 3 interleaved runs;
4. the scale case, ``bench.tenants --cases scale``: 20,000 namespaces x 1, one run each, the
   emulator given a 2 GB heap (at its default 512 MB it runs out listing the namespaces).

Then it prints issue 25's targets, each met or MISSED with the figures it was judged on, and
writes one JSON holding every part's full report. Each part checks its own counts (exactly
once, per namespace) and stops the run if they are wrong. A full run takes about an hour; run it
on a quiet machine (no tests, no helpers). ``--quick`` runs every part at a toy size, to check
the driver, not to measure.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from statistics import median
from pathlib import Path
from typing import Callable, Optional
from unittest import mock

X3 = "@3x"
SCALE_HEAP = "-Xmx2g"
EXPORTS = ("export_entities", "backup_entities", "export_keys")


def tenant_rows(report: dict, case: str) -> dict:
    """``bench.tenants`` runs of one case, by contender: median wall, CPU and peak RSS."""
    by: dict[str, list[dict]] = {}
    for r in report.get("runs", []):
        if r["case"] == case:
            by.setdefault(r["who"], []).append(r)
    return {who: {"runs": len(rs), "wall": median([r["wall"] for r in rs]),
                  "cpu": median([r["cpu"] for r in rs]),
                  "peak_rss_mb": median([r["peak_rss_mb"] for r in rs])}
            for who, rs in by.items()}


def checks(reads: Optional[dict], writes: Optional[dict], wide: Optional[dict],
           scale: Optional[dict], namespaces: tuple[int, int]) -> list[tuple[Optional[bool], str]]:
    """Issue 25's targets from the parts' reports: (met, what was compared); met is None for a
    line that only informs."""
    out: list[tuple[Optional[bool], str]] = []

    def add(ok: bool, text: str) -> None:
        out.append((ok, text))

    if reads:
        rows = reads["rows"]

        def med(key: str, what: str) -> float:
            return rows[key][what]["median"]

        for suffix, size in (("", "1x"), (X3, "3x")):
            full, peer = "ours-count_by_property" + suffix, "peer" + suffix
            if full in rows and peer in rows:
                a, b = med(full, "cpu_s_per_1k"), med(peer, "cpu_s_per_1k")
                add(a <= 0.6 * b, f"reads {size}: CPU s per 1,000 entities (whole run) <= 0.6x "
                    f"the peer's: {a:.3f} vs {b:.3f} = {a / b:.2f}x")
                a, b = med(full, "entities_per_s"), med(peer, "entities_per_s")
                add(a >= 1.25 * b, f"reads {size}: speed >= 1.25x the peer's: {a:.0f} vs "
                    f"{b:.0f} entities/s = {a / b:.2f}x")
            limit = "limit-narrow" + suffix
            if suffix and full in rows and limit in rows:
                a, b = med(full, "entities_per_s"), med(limit, "entities_per_s")
                add(a >= 0.9 * b, f"reads 3x: speed >= 0.9x the bare client's: {a:.0f} vs "
                    f"{b:.0f} entities/s = {a / b:.2f}x")
            text = "peer-text" + suffix
            for job in EXPORTS:
                mine = f"ours-{job}" + suffix
                if mine in rows and text in rows:
                    a, b = med(mine, "cpu_s_per_1k"), med(text, "cpu_s_per_1k")
                    add(a <= 0.75 * b, f"export {size} {job}: CPU s per 1,000 <= 0.75x the "
                        f"peer's read + JSON + WriteToText: {a:.3f} vs {b:.3f} = {a / b:.2f}x")
        for key in sorted(k for k in rows if k.startswith("ours")):
            rss = med(key, "peak_rss_mb")
            add(rss < 400, f"peak RSS of {key} < 400 MB: {rss:.0f} MB")
        worst = max((r["balance"]["worst"] for r in rows.values() if "balance" in r),
                    default=None)
        if worst is not None:
            add(worst <= 1.5, f"balance: no range above 1.5x its namespace's mean: worst "
                f"{worst:.2f}")
        start = reads.get("startup", {})
        if "startup-run" in start:
            w = start["startup-run"]["wall_s"]["median"]
            add(w <= 4.0, f"start-up: a run over {reads.get('tiny')} entities <= 4 s: {w:.2f} s")
    if writes:
        eps, cpu = writes["median_eps"], writes["cpu_per_1k"]
        if {"ours-blind", "limit"} <= set(eps):
            a, b = eps["ours-blind"], eps["limit"]
            add(a >= 0.9 * b, f"writes: blind >= 0.9x the bare client's read + put: {a:.0f} vs "
                f"{b:.0f} entities/s = {a / b:.2f}x")
        if {"ours-blind", "peer"} <= set(cpu):
            a, b = cpu["ours-blind"], cpu["peer"]
            add(a <= 0.75 * b, f"writes: blind CPU s per 1,000 <= 0.75x Beam's: {a:.3f} vs "
                f"{b:.3f} = {a / b:.2f}x")
        if {"ours-blind-no-undo", "peer"} <= set(cpu):
            a, b = cpu["ours-blind-no-undo"], cpu["peer"]
            add(a <= 0.75 * b, f"writes: blind without the undo log, CPU s per 1,000 <= 0.75x "
                f"Beam's: {a:.3f} vs {b:.3f} = {a / b:.2f}x")
        for name in sorted(k for k in eps if k.startswith("ours")):
            rss = median([r["peak_rss_mb"] for r in writes["runs"] if r["row"] == name])
            add(rss < 400, f"writes: peak RSS of {name} < 400 MB: {rss:.0f} MB")
        if {"ours-transactional", "ours-blind"} <= set(eps):
            a, b = eps["ours-transactional"], eps["ours-blind"]
            add(a >= 0.75 * b, f"writes: transactional >= 0.75x blind: {a:.0f} vs {b:.0f} "
                f"entities/s = {a / b:.2f}x")
    n_wide, n_scale = namespaces
    w = tenant_rows(wide, "wide") if wide else {}
    s = tenant_rows(scale, "scale") if scale else {}
    if "ours" in w and "bare-2" in w:
        a, b = w["ours"]["wall"], w["bare-2"]["wall"]
        add(a <= 1.25 * b, f"tenants {n_wide} x 5: within 1.25x of the bare client's "
            f"one-query-per-namespace floor: {a:.1f} vs {b:.1f} s = {a / b:.2f}x")
    if "ours" in w and "ours" in s:
        a, b = s["ours"]["wall"] / n_scale * 1000, w["ours"]["wall"] / n_wide * 1000
        add(a <= 1.2 * b, f"tenants {n_scale} x 1: time per namespace within 1.2x of the "
            f"{n_wide}-namespace case: {a:.1f} vs {b:.1f} ms = {a / b:.2f}x")
        a, b = s["ours"]["peak_rss_mb"], w["ours"]["peak_rss_mb"]
        add(a <= 1.15 * b, f"tenants {n_scale} x 1: flat memory (peak RSS within 1.15x of the "
            f"{n_wide}-namespace case): {a:.0f} vs {b:.0f} MB = {a / b:.2f}x")
        add(a < 400, f"tenants {n_scale} x 1: peak RSS < 400 MB: {a:.0f} MB")
    if "bare-2" in s and "bare-2" in w:
        a = s["bare-2"]["wall"] / n_scale * 1000
        b = w["bare-2"]["wall"] / n_wide * 1000
        out.append((None, f"the bare client itself, per namespace: {a:.1f} ms at {n_scale}, "
                    f"{b:.1f} ms at {n_wide}: {a / b:.2f}x"))
    return out


def slopes(reads: dict) -> list[str]:
    """CPU per entity between 1x and 3x: what a run costs beyond its fixed start-up."""
    rows, lines = reads["rows"], []
    for key in ("peer", "ours-count_by_property", "peer-text",
                *(f"ours-{j}" for j in EXPORTS)):
        if key in rows and key + X3 in rows:
            one, three = rows[key], rows[key + X3]
            d = three["cpu_s"]["median"] - one["cpu_s"]["median"]
            n = three["entities"] - one["entities"]
            lines.append(f"  {key:<24} {d / n * 1e6:6.0f} µs of CPU per entity (3x - 1x)")
    return lines


def print_verdicts(verdicts: list) -> None:
    print("targets (issue 25):")
    for ok, text in verdicts:
        print(f"  ({text})" if ok is None else f"  [{'met' if ok else 'MISSED'}] {text}")
    print(f"{sum(1 for ok, _ in verdicts if ok)} met, "
          f"{sum(1 for ok, _ in verdicts if ok is False)} missed")


def judge(path: Path) -> list:
    """A kept ``--json`` file judged again by this code (its measurements as they were)."""
    saved = json.loads(path.read_text())
    parts, a = saved["parts"], saved["args"]
    return checks(parts.get("reads"), parts.get("writes"), parts.get("wide"), parts.get("scale"),
                  (a["namespaces"], a["scale_namespaces"]))


def run_part(name: str, main: Callable[[list], int], argv: list[str], out: Path,
             env: Optional[dict] = None) -> dict:
    print(f"\n=== {name}: {' '.join(argv)}", flush=True)
    started = time.monotonic()
    with mock.patch.dict(os.environ, env or {}):
        code = main(argv + ["--json", str(out)])
    if code:
        raise SystemExit(f"bench.cost: the {name} part failed (exit {code}); nothing judged")
    report = json.loads(out.read_text())
    report["part_seconds"] = round(time.monotonic() - started, 1)
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.cost", description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="write every part's report and the verdicts to this file")
    ap.add_argument("--entities", type=int, default=30000, help="reads' and exports' data set")
    ap.add_argument("--write-entities", type=int, default=30000, help="writes' data set")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--namespaces", type=int, default=2000, help="the wide tenants case")
    ap.add_argument("--scale-namespaces", type=int, default=20000)
    ap.add_argument("--parts", default="reads,writes,wide,scale")
    ap.add_argument("--quick", action="store_true",
                    help="every part at a toy size: checks the driver, measures nothing")
    ap.add_argument("--judge", metavar="JSON",
                    help="measure nothing: judge a kept --json file again and print the verdicts")
    args = ap.parse_args(argv)
    if args.judge:
        print_verdicts(judge(Path(args.judge)))
        return 0
    if args.quick:
        args.entities, args.write_entities, args.repeats = 800, 600, 1
        args.namespaces, args.scale_namespaces = 20, 40
    parts = set(args.parts.split(","))
    from bench import bench, tenants, writes

    with tempfile.TemporaryDirectory(prefix="bench-cost-") as kept:  # the parts' JSON
        tmp = Path(kept)
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        reports: dict = {}
        if "reads" in parts:
            reports["reads"] = run_part("reads and exports", bench.main, [
                "--only", "limit,peer,full,export,exports", "--entities", str(args.entities),
                "--repeats", str(args.repeats)] + (["--tiny", "50"] if args.quick else []),
                tmp / "reads.json")
        if "writes" in parts:
            reports["writes"] = run_part("writes", writes.main, [
                "--entities", str(args.write_entities), "--repeats", str(args.repeats)],
                tmp / "writes.json")
        tenant_args = ["--threads", "2", "--in-flight-cases", ""]
        if "wide" in parts:
            reports["wide"] = run_part("tenants, wide", tenants.main, tenant_args + [
                "--cases", "wide", "--namespaces", str(args.namespaces),
                "--repeats", str(args.repeats)], tmp / "wide.json")
        if "scale" in parts:
            reports["scale"] = run_part("tenants, scale", tenants.main, tenant_args + [
                "--cases", "scale", "--scale-namespaces", str(args.scale_namespaces),
                "--warmup", "0"], tmp / "scale.json",
                env={"DATASTORE_EMULATOR_JAVA_TOOL_OPTIONS": SCALE_HEAP})
    verdicts = checks(reports.get("reads"), reports.get("writes"), reports.get("wide"),
                      reports.get("scale"), (args.namespaces, args.scale_namespaces))
    print(f"\n=== issue 25, every row in one run (started {started})")
    for name, r in reports.items():
        print(f"  {name}: {r['part_seconds']:.0f} s")
    if "reads" in reports:
        print(bench.table(reports["reads"]))
        print("CPU per entity beyond the fixed start-up:")
        print("\n".join(slopes(reports["reads"])))
    for name in ("wide", "scale"):
        if name in reports:
            print(reports[name]["table"])
    print_verdicts(verdicts)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"when": started, "args": vars(args), "parts": reports,
             "targets": [{"met": ok, "what": text} for ok, text in verdicts]}, indent=2,
            default=str))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
