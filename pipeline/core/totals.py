"""Counters rolled up as data: slice -> range -> namespace -> job.

The reading step emits one ``SliceStats`` per slice; the splitting step one ``NamespacePlanned``
per namespace (so empty namespaces appear too). The roll-up (``pipeline.graph.rollup``) folds
them into ``Totals`` per range, per namespace and for the job: what hooks get as ``ctx.totals``
and what the summary is made of. Plain data: no Beam here.
"""
from __future__ import annotations

import dataclasses

from pipeline.core.counters import merge_counters


@dataclasses.dataclass
class SliceStats:
    """What one slice read: the reading step emits one per slice (``worker`` names the
    host, process and thread, so the summary can count the workers that shared a run)."""

    namespace: str
    range_id: str
    entities: int = 0
    records: int = 0
    queries: int = 0
    retries: int = 0
    seconds: float = 0.0
    counters: dict = dataclasses.field(default_factory=dict)
    worker: str = ""
    errors: int = 0  # entities dead-lettered: the job failed on them or their records


@dataclasses.dataclass
class NamespacePlanned:
    """A namespace's plan: how many initial ranges it was cut into, from how many samples."""

    namespace: str
    ranges: int
    samples: int
    retries: int = 0  # transient errors retried while sampling it


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
    errors: int = 0  # entities dead-lettered

    def add_slice(self, s: SliceStats, cap: int) -> None:
        self.entities += s.entities
        self.errors += s.errors
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
        self.errors += o.errors
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

    def add_item(self, item, cap: int) -> None:
        """A SliceStats, NamespacePlanned or Totals: one level of the roll-up."""
        if isinstance(item, NamespacePlanned):
            self.ranges += item.ranges
            self.samples += item.samples
            self.retries += item.retries
        elif isinstance(item, Totals):
            self.add(item, cap)
        else:
            self.add_slice(item, cap)

    def to_json(self) -> dict:
        return {
            "entities": self.entities, "records": self.records, "ranges": self.ranges,
            "samples": self.samples, "slices": self.slices, "queries": self.queries,
            "retries": self.retries, "errors": self.errors,
            "read_seconds": round(self.read_seconds, 3),
            "counters": dict(sorted(self.counters.items())), "workers": len(self.workers),
            "range_entities": dict(sorted(self.range_entities.items(),
                                          key=lambda kv: int(kv[0].rsplit("#", 1)[-1]))),
        }


    def to_dict(self) -> dict:
        """Everything, losslessly (a resumed run carries a completed namespace's totals over)."""
        d = dataclasses.asdict(self)
        d["workers"] = sorted(self.workers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Totals":
        return cls(**{**d, "workers": set(d.get("workers", ()))})


@dataclasses.dataclass(frozen=True)
class NamespaceOutput:
    """What a sink did with one namespace's records: where they went (``output``: a file, or
    the tables' names), and counters to add to the namespace's totals (rows sent, rejected)."""

    output: str
    counters: dict = dataclasses.field(default_factory=dict)
