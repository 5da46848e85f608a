"""Counters rolled up as data: slice -> range -> namespace -> job, as Beam combiners over the
plain ``Totals`` of ``pipeline.core.totals``."""
from __future__ import annotations

import dataclasses
from typing import Iterable

import apache_beam as beam

from pipeline.core.totals import Totals


class TotalsFn(beam.CombineFn):
    """SliceStats, NamespacePlanned or Totals -> their Totals: one level of the roll-up."""

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
    """Slices of a range (and a namespace's plan record) share a key: (namespace, range id)."""
    return (stats.namespace, getattr(stats, "range_id", "")), stats


def totals_with_output(kv):
    """A namespace's totals joined with what its sink did (a ``NamespaceOutput``): the
    sink's counters join the namespace's, its output is what ``namespace_completed`` gets."""
    namespace, groups = kv
    for totals in groups["totals"]:
        outputs = list(groups["output"])
        out = outputs[0] if outputs else None
        if out is None:
            yield namespace, (totals, None)
            continue
        if out.counters:
            totals = dataclasses.replace(totals, counters={**totals.counters, **out.counters})
        yield namespace, (totals, out.output)


