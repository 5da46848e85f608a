"""Counters rolled up as data: slice -> range -> namespace -> job.

The reading DoFn emits one ``SliceStats`` per slice; the splitting DoFn one
``NamespacePlanned`` per namespace (so empty namespaces appear too). Combiners
fold them into per-range, per-namespace and job totals, the summary the run
prints and writes as JSON.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from typing import Iterable, Optional

import apache_beam as beam

from pipeline.job import OVERFLOW_COUNTER
from pipeline.query import namespace_label


@dataclasses.dataclass
class SliceStats:
    namespace: str
    range_id: str
    entities: int = 0
    records: int = 0
    queries: int = 0
    retries: int = 0
    seconds: float = 0.0
    counters: dict = dataclasses.field(default_factory=dict)
    worker: str = ""


@dataclasses.dataclass
class NamespacePlanned:
    namespace: str
    ranges: int
    samples: int


def merge_counters(into: dict, other: dict, cap: int) -> dict:
    """Add ``other`` into ``into``; names past ``cap`` fold into ``_overflow``."""
    for name, n in other.items():
        if name in into:
            into[name] += n
        elif len(into) < cap or name == OVERFLOW_COUNTER:
            into[name] = n
        else:
            into[OVERFLOW_COUNTER] = into.get(OVERFLOW_COUNTER, 0) + n
    return into


@dataclasses.dataclass
class Totals:
    """What one range, namespace or job did."""

    entities: int = 0
    records: int = 0
    slices: int = 0
    queries: int = 0
    retries: int = 0
    read_seconds: float = 0.0
    counters: dict = dataclasses.field(default_factory=dict)
    workers: set = dataclasses.field(default_factory=set)
    ranges: int = 0  # planned initial ranges (namespace and job level)
    samples: int = 0
    range_entities: dict = dataclasses.field(default_factory=dict)  # range id -> entities

    def add_slice(self, s: SliceStats, cap: int) -> None:
        self.entities += s.entities
        self.records += s.records
        self.slices += 1
        self.queries += s.queries
        self.retries += s.retries
        self.read_seconds += s.seconds
        merge_counters(self.counters, s.counters, cap)
        if s.worker:
            self.workers.add(s.worker)
        self.range_entities[s.range_id] = self.range_entities.get(s.range_id, 0) + s.entities

    def add(self, o: "Totals", cap: int) -> None:
        self.entities += o.entities
        self.records += o.records
        self.slices += o.slices
        self.queries += o.queries
        self.retries += o.retries
        self.read_seconds += o.read_seconds
        merge_counters(self.counters, o.counters, cap)
        self.workers |= o.workers
        self.ranges += o.ranges
        self.samples += o.samples
        for k, v in o.range_entities.items():
            self.range_entities[k] = self.range_entities.get(k, 0) + v

    def to_json(self) -> dict:
        return {
            "entities": self.entities, "records": self.records, "ranges": self.ranges,
            "samples": self.samples, "slices": self.slices, "queries": self.queries,
            "retries": self.retries, "read_seconds": round(self.read_seconds, 3),
            "counters": dict(sorted(self.counters.items())), "workers": len(self.workers),
            "range_entities": dict(sorted(self.range_entities.items(),
                                          key=lambda kv: int(kv[0].rsplit("#", 1)[-1]))),
        }


class TotalsFn(beam.CombineFn):
    """SliceStats, NamespacePlanned or Totals -> their Totals: one level of the roll-up."""

    def __init__(self, cap: int):
        self.cap = cap

    def create_accumulator(self) -> Totals:
        return Totals()

    def add_input(self, acc: Totals, item) -> Totals:
        if isinstance(item, NamespacePlanned):
            acc.ranges += item.ranges
            acc.samples += item.samples
        elif isinstance(item, Totals):
            acc.add(item, self.cap)
        else:
            acc.add_slice(item, self.cap)
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


def build_summary(job: str, query: str, params: dict, started: dt.datetime,
                  finished: dt.datetime, per_namespace: dict, cap: int,
                  read_time: Optional[dt.datetime] = None) -> dict:
    total = Totals()
    for t in per_namespace.values():
        total.add(t, cap)
    seconds = max((finished - started).total_seconds(), 1e-9)
    out = {
        "job": job, "query": query, "params": dict(params),
        "read_time": read_time.isoformat() if read_time else None,
        "started": started.isoformat(), "finished": finished.isoformat(),
        "seconds": round(seconds, 3),
        "entities_per_second": round(total.entities / seconds, 1),
        "totals": total.to_json(),
        "namespaces": {namespace_label(ns): per_namespace[ns].to_json()
                       for ns in sorted(per_namespace)},
    }
    return out


def format_summary(s: dict) -> str:
    """The summary as the terminal shows it at the end of a run."""
    t = s["totals"]
    lines = [
        f"job {s['job']}: {t['entities']} entities in {len(s['namespaces'])} namespaces, "
        f"{t['ranges']} ranges, {s['seconds']:.1f} s ({s['entities_per_second']:.0f} entities/s)",
        f"query: {s['query']}",
    ]
    if s.get("read_time"):
        lines.append(f"read time: {s['read_time']}")
    if t["records"]:
        lines.append(f"records output: {t['records']}")
    width = max([len(n) for n in s["namespaces"]] + [9])
    lines.append(f"  {'namespace':<{width}}  {'entities':>9}  {'ranges':>6}  counters")
    for ns, n in s["namespaces"].items():
        counters = ", ".join(f"{k}={v}" for k, v in n["counters"].items())
        lines.append(f"  {ns:<{width}}  {n['entities']:>9}  {n['ranges']:>6}  {counters}")
    if t["counters"]:
        lines.append("total counters: " + ", ".join(f"{k}={v}" for k, v in t["counters"].items()))
    return "\n".join(lines)


def to_json_text(summary: dict) -> str:
    return json.dumps(summary, indent=2, sort_keys=False, ensure_ascii=False, default=str) + "\n"
