"""Benchmark: what the roll-up's range and unit groupings cost per unit on the local runner
(the lever of ``SplitNamespaces`` rolling up a unit it read whole, issue 25).

    .venv/bin/python -m bench.rollup [--units 2000] [--repeats 5]

Builds, on Beam's FnApiRunner in this process, the roll-up of ``units`` one-range units (a
plan record and one slice each) two ways, interleaved: through ``RangeTotals`` and
``UnitTotals`` (the combiners, as a unit ``ReadRanges`` read still goes), and made where it
was read (``core/totals.read_whole``, as ``SplitNamespaces`` now does). Both end in the same
unit totals (checked). Prints the CPU of this process for each, best and median. No emulator,
no Datastore. Run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys

import apache_beam as beam
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from pipeline.core.totals import SliceStats, UnitPlanned, read_whole
from pipeline.graph.rollup import TotalsFn, by_range

CAP = 100
ENDED = 1_700_000_000.5


def _unit(i: int) -> tuple:
    ns = f"t{i:05d}"
    return (UnitPlanned(ns, 1, 0, kind="Item"),
            SliceStats(ns, f"{ns}#0", 5, 0, 1, 0, 0.01, {"keys": 5}, "w", kind="Item",
                       ended=ENDED))


def _expected(units: int) -> list:
    return [((p.namespace, p.kind), read_whole(p, [s], CAP)[1].entities)
            for p, s in map(_unit, range(units))]


def through_groupings(p, units: int):
    return (p
            | beam.Create([x for i in range(units) for x in _unit(i)])
            | beam.Map(by_range)
            | "RangeTotals" >> beam.CombinePerKey(TotalsFn(CAP))
            | beam.Map(lambda kv: ((kv[0][0], kv[0][1]), kv[1]))
            | "UnitTotals" >> beam.CombinePerKey(TotalsFn(CAP)))


def where_read(p, units: int):
    def whole(i):
        planned, s = _unit(i)
        return (planned.namespace, planned.kind), read_whole(planned, [s], CAP)[1]
    return p | beam.Create(list(range(units))) | beam.Map(whole)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.rollup",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    want = _expected(args.units)
    cpu: dict = {"groupings": [], "where read": []}
    for _ in range(args.repeats):
        for name, build in (("groupings", through_groupings), ("where read", where_read)):
            started = _cpu()
            with beam.Pipeline(runner=FnApiRunner()) as p:
                got = build(p, args.units) | beam.MapTuple(lambda k, t: (k, t.entities))
                assert_that(got, equal_to(want))
            cpu[name].append(_cpu() - started)
    for name, v in cpu.items():
        print(f"{name}: CPU best {min(v):.2f} s, median {statistics.median(v):.2f} s "
              f"({args.units} units, {args.repeats} runs)")
    saved = min(cpu["groupings"]) - min(cpu["where read"])
    print(f"the two groupings: {saved / args.units * 1000:.3f} ms of CPU per unit (best of each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
