"""Counters rolled up as data: slice -> range -> unit (a kind in a namespace) -> namespace ->
job, as Beam combiners over the plain ``Totals`` of ``pipeline.core.totals``."""
from __future__ import annotations

import dataclasses
from typing import Iterable

import apache_beam as beam

from pipeline.core.totals import Totals


class TotalsFn(beam.CombineFn):
    """SliceStats, UnitPlanned or Totals -> their Totals: one level of the roll-up."""

    def __init__(self, cap: int):
        self.cap = cap

    def create_accumulator(self) -> Totals:
        return Totals()

    def add_input(self, acc: Totals, item) -> Totals:
        acc.add_item(item, self.cap)
        return acc

    def merge_accumulators(self, accs: Iterable[Totals]) -> Totals:
        out = Totals()
        for a in accs:
            out.add(a, self.cap)
        return out

    def extract_output(self, acc: Totals) -> Totals:
        return acc


@dataclasses.dataclass
class NamespaceDone:
    """A namespace's units, completed: its totals (each kind's under ``kinds`` when the job
    reads several) and where the sink put each kind's records."""

    totals: Totals
    outputs: dict  # kind -> output (a file, tables), when the sink has one


class NamespaceTotalsFn(beam.CombineFn):
    """(kind, Totals, output) of a namespace's completed units -> NamespaceDone."""

    def __init__(self, cap: int, per_kind: bool):
        self.cap, self.per_kind = cap, per_kind

    def create_accumulator(self) -> NamespaceDone:
        return NamespaceDone(Totals(), {})

    def add_input(self, acc: NamespaceDone, item) -> NamespaceDone:
        kind, totals, output = item
        if self.per_kind:
            acc.totals.add_kind(kind, totals, self.cap)
        else:
            acc.totals.add(totals, self.cap)
        if output is not None:
            acc.outputs[kind] = output
        return acc

    def merge_accumulators(self, accs) -> NamespaceDone:
        out = self.create_accumulator()
        for a in accs:
            out.totals.add(a.totals, self.cap)
            out.outputs.update(a.outputs)
        return out

    def extract_output(self, acc: NamespaceDone) -> NamespaceDone:
        return acc


class JobSummaryFn(beam.CombineFn):
    """(namespace, Totals) pairs -> {namespace: Totals}; an empty job gives {}."""

    def create_accumulator(self) -> dict:
        return {}

    def add_input(self, acc: dict, item) -> dict:
        ns, totals = item
        acc[ns] = totals
        return acc

    def merge_accumulators(self, accs) -> dict:
        out: dict = {}
        for a in accs:
            out.update(a)
        return out

    def extract_output(self, acc: dict) -> dict:
        return acc


def by_range(stats):
    """Slices of a range (and a unit's plan record, range id "") share a key: (namespace, kind,
    range id)."""
    return (stats.namespace, stats.kind, stats.range_id), stats


def totals_with_output(kv):
    """A unit's totals joined with what its sink did (a ``NamespaceOutput``): the sink's
    counters join the unit's, its output is what ``namespace_completed`` gets."""
    unit_key, groups = kv
    for totals in groups["totals"]:
        outputs = list(groups["output"])
        out = outputs[0] if outputs else None
        if out is None:
            yield unit_key, (totals, None)
            continue
        if out.counters:
            totals = dataclasses.replace(totals, counters={**totals.counters, **out.counters})
        yield unit_key, (totals, out.output)


