"""Counters rolled up as data: slice -> range -> (namespace, kind) -> namespace -> job.

The reading step emits one ``SliceStats`` per slice; the splitting step one ``UnitPlanned`` per
unit, a kind in a namespace (so empty units appear too). The roll-up (``pipeline.graph.rollup``)
folds them into ``Totals`` per range, per unit, per namespace and for the job: what hooks get as
``ctx.totals`` and what the summary is made of. A namespace's (and the job's) totals keep each
kind's own in ``kinds`` when the job reads several kinds. Plain data: no Beam here.
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
    kind: str = ""
    ended: float = 0.0  # when it ended (seconds since the epoch): the run's timeline


#: The kind of the plan record of a namespace that holds none of the kinds a job reads: the
#: namespace completes (its hooks fire, it is in the summary) with no unit.
NO_KIND = ""


@dataclasses.dataclass
class UnitPlanned:
    """A unit's plan (a kind in a namespace): how many initial ranges it was cut into, from how
    many samples."""

    namespace: str
    ranges: int
    samples: int
    retries: int = 0  # transient errors retried while sampling it
    kind: str = ""
    range_id: str = ""  # none: the roll-up keys a plan record apart from its ranges


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
    kinds: dict = dataclasses.field(default_factory=dict)  # kind -> Totals (several kinds read)
    range_seconds: dict = dataclasses.field(default_factory=dict)  # range id -> read seconds
    range_slices: dict = dataclasses.field(default_factory=dict)  # range id -> slices
    #: entities read per second of the run: whole second since the epoch -> entities (the
    #: report's rate over time; not in summary.json's per-namespace totals)
    timeline: dict = dataclasses.field(default_factory=dict)

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
        self.range_seconds[s.range_id] = self.range_seconds.get(s.range_id, 0.0) + s.seconds
        self.range_slices[s.range_id] = self.range_slices.get(s.range_id, 0) + 1
        if s.ended:
            add_to_timeline(self.timeline, s.ended - s.seconds, s.ended, s.entities)

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
        for mine, theirs in ((self.range_entities, o.range_entities),
                             (self.range_seconds, o.range_seconds),
                             (self.range_slices, o.range_slices), (self.timeline, o.timeline)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
        for kind, t in o.kinds.items():
            self.kinds.setdefault(kind, Totals()).add(t, cap)

    def add_kind(self, kind: str, t: "Totals", cap: int) -> None:
        """A unit's totals into its namespace's (or the job's), kept apart under its kind."""
        self.add(t, cap)
        if kind != NO_KIND:
            self.kinds.setdefault(kind, Totals()).add(t, cap)

    def add_item(self, item, cap: int) -> None:
        """A SliceStats, NamespacePlanned or Totals: one level of the roll-up."""
        if isinstance(item, UnitPlanned):
            self.ranges += item.ranges
            self.samples += item.samples
            self.retries += item.retries
        elif isinstance(item, Totals):
            self.add(item, cap)
        else:
            self.add_slice(item, cap)

    def to_json(self) -> dict:
        out = self._json()
        if self.kinds:
            out["kinds"] = {k: t._json() for k, t in sorted(self.kinds.items())}
        return out

    def _json(self) -> dict:
        return {
            "entities": self.entities, "records": self.records, "ranges": self.ranges,
            "samples": self.samples, "slices": self.slices, "queries": self.queries,
            "retries": self.retries, "errors": self.errors,
            "read_seconds": round(self.read_seconds, 3),
            "counters": dict(sorted(self.counters.items())), "workers": len(self.workers),
            "range_entities": _by_range(self.range_entities),
            "range_seconds": {k: round(v, 3) for k, v in _by_range(self.range_seconds).items()},
            "range_slices": _by_range(self.range_slices),
        }


    def to_dict(self) -> dict:
        """Everything, losslessly (a resumed run carries a completed unit's totals over)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["workers"] = sorted(self.workers)
        d["kinds"] = {k: t.to_dict() for k, t in self.kinds.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Totals":
        kinds = {k: cls.from_dict(t) for k, t in d.get("kinds", {}).items()}
        timeline = {int(k): v for k, v in d.get("timeline", {}).items()}  # JSON made them text
        return cls(**{**d, "workers": set(d.get("workers", ())), "kinds": kinds,
                      "timeline": timeline})


def read_whole(planned: UnitPlanned, slices: list, cap: int) -> tuple:
    """A unit read whole in one step (planning's first read exhausted it) -> (range id ->
    its Totals, in the order its slices came; the unit's Totals): what the roll-up's range
    and unit combiners make of its plan record and slices, made where they were read, so
    such a unit (most units of a many-tenant run) crosses no shuffle on its way there."""
    ranges: dict = {}
    for s in slices:
        ranges.setdefault(s.range_id, Totals()).add_slice(s, cap)
    unit = Totals()
    unit.add_item(planned, cap)
    for t in ranges.values():
        unit.add(t, cap)
    return ranges, unit


def add_to_timeline(timeline: dict, start: float, end: float, entities: int) -> None:
    """A slice's entities spread evenly over the whole seconds it took (``timeline``: whole
    second since the epoch -> entities)."""
    first, last = int(start), int(end)
    if last <= first or entities <= 0:
        timeline[last] = timeline.get(last, 0) + entities
        return
    span = end - start
    given = 0
    for sec in range(first, last + 1):
        share = (min(end, sec + 1) - max(start, sec)) / span
        n = round(entities * share) if sec < last else entities - given
        given += n
        if n:
            timeline[sec] = timeline.get(sec, 0) + n


def _by_range(d: dict) -> dict:
    """Range id -> value, in range order (``acme#2`` before ``acme#10``)."""
    return dict(sorted(d.items(), key=lambda kv: (kv[0].rsplit("#", 1)[0],
                                                  int(kv[0].rsplit("#", 1)[-1]))))


@dataclasses.dataclass(frozen=True)
class NamespaceOutput:
    """What a sink did with one namespace's records: where they went (``output``: a file, or
    the tables' names), and counters to add to the namespace's totals (rows sent, rejected)."""

    output: str
    counters: dict = dataclasses.field(default_factory=dict)
