"""Job-wide progress: what the workers report, folded into one view with an estimate of the
work left. Pure: the reading side (``pipeline.graph.progress``) writes the events, the
launcher (``pipeline.launch.progress``) reads and shows them.

Events are small dicts (one JSON line each): ``namespaces`` (how many namespaces the run
plans), ``unit`` (a unit planned: its ranges, sample gaps, whether its sample was capped, the
backend's statistics count if any), ``planned`` (a namespace's units all planned), ``slice``
(a slice read: entities, records, errors, retries, sample gaps passed, whether it finished its
piece of the range), ``reading`` (a slice still going: entities so far, replaced by its
``slice``). A namespace is *done* once it is planned and every range of its units has been
read (its ``namespace_completed`` hook comes later: it waits for every namespace).

**Writes** (a job that writes back, ``pipeline.graph.writer``): a ``slice`` carries its
``writes`` counts (``put``, ``changed``, ``deleted``, ``unchanged``, ``failed``, ``conflicts``,
... : the ``writes.*`` counters without their prefix), a ``reading`` event the mutations
written so far by its slice (``written``: put + changed + deleted). In a dry run they are the
writes the run *would* make; the launcher knows the mode (``ProgressState(write_mode=...)``)
and says so.

**The estimate.** A unit's ranges are cut at its scatter samples, which Datastore spreads
like the data, so each *sample gap* of a unit holds about the same number of entities. For a
unit being read, its total is ``entities read × gaps / gaps passed``. For a unit not started:
its statistics count when the backend keeps ``__Stat_Ns_Kind__`` (production, for an
unfiltered query), else its gaps × the entities per gap measured on other units whose sample
was not capped (small units: every scatter key was sampled, so a gap is worth the same
everywhere), or, for a capped unit (a large one: at most ``shards × oversampling`` samples),
the mean of the capped units measured so far. Namespaces not yet planned count as the mean
planned namespace, once enough are planned for a mean to mean something (``ENOUGH_PLANNED``:
3, or a tenth of them; all, when there are fewer): one tiny tenant planned first must not make
"7 of ~21 entities" of a run of 1,507. Until then, or until something has been measured, there
is no estimate.
"""
from __future__ import annotations

import collections
import dataclasses
from typing import Any, Optional

from pipeline.core.keyorder import sort_key
from pipeline.core.keyrange import KeyRange

#: Seconds of history the current rate is measured over.
RATE_WINDOW = 10.0
#: The writes that count as written (the rate and the total shown), as in
#: ``pipeline.core.writes.WRITTEN`` without the ``writes.`` prefix.
WRITTEN = ("put", "changed", "deleted")
#: Other write counts a line shows when not zero.
WRITE_TROUBLE = ("failed", "conflicts", "gone")


@dataclasses.dataclass
class UnitProgress:
    """One unit (a kind in a namespace): its plan and what has been read of it."""

    namespace: str
    ranges: int = 0
    gaps: float = 0.0  # sample gaps planned (a key range of k samples has k + 1)
    capped: bool = False  # its sample hit the limit: a large unit
    stat: Optional[int] = None  # the backend's entity count (production statistics)
    entities: int = 0
    gaps_done: float = 0.0
    ranges_done: int = 0
    planned: bool = True  # False: known from a slice only, its plan not read yet

    @property
    def done(self) -> bool:
        return self.planned and self.ranges_done >= self.ranges


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The job-wide view at one moment."""

    namespaces: Optional[int]  # to plan (None: not listed yet)
    namespaces_planned: int
    namespaces_done: int
    ranges: int
    ranges_done: int
    entities: int  # read, slices still going included
    records: int
    errors: int
    retries: int
    estimated: Optional[int]  # the estimated total of entities (None: not known yet)
    rate: Optional[float]  # entities/s over the last RATE_WINDOW seconds
    elapsed: float
    finished: bool = False
    #: A job that writes: ``dry_run``, ``transactional`` or ``blind`` (None: it writes nothing).
    write_mode: Optional[str] = None
    #: Write counts so far (``put``, ``changed``, ``deleted``, ``failed``, ...), slices ended.
    writes: dict = dataclasses.field(default_factory=dict)
    written: int = 0  # put + changed + deleted, slices still going included
    write_rate: Optional[float] = None  # of ``written``, over the last RATE_WINDOW seconds

    @property
    def fraction(self) -> Optional[float]:
        if self.finished:
            return 1.0
        if not self.estimated:
            return None
        return min(self.entities / self.estimated, 0.999)

    @property
    def eta(self) -> Optional[float]:
        """Seconds left at the current rate (None: unknown)."""
        if self.finished:
            return 0.0
        if self.estimated is None or not self.rate:
            return None
        return max(self.estimated - self.entities, 0) / self.rate


class ProgressState:
    """Every event so far, folded; ``snapshot(now)`` gives the view."""

    def __init__(self, started: float, write_mode: Optional[str] = None):
        self.started = started
        self.write_mode = write_mode
        self.writes: collections.Counter = collections.Counter()
        self.reading_written: dict = {}  # worker -> writes of its slice still going
        self.namespaces: Optional[int] = None
        self.planned: set = set()
        self.units: dict = {}  # unit label -> UnitProgress
        self.entities = self.records = self.errors = self.retries = 0
        self.reading: dict = {}  # worker -> entities of its slice still going
        self.history: collections.deque = collections.deque()  # (time, entities, written)
        self.finished = False

    def apply(self, event: dict) -> None:
        kind = event.get("e")
        if kind == "namespaces":
            self.namespaces = (self.namespaces or 0) + int(event["n"])
        elif kind == "unit":
            u = self.units.setdefault(event["unit"], UnitProgress(event["ns"]))
            u.ranges, u.gaps, u.capped = int(event["ranges"]), float(event["gaps"]), \
                bool(event["capped"])
            u.stat, u.planned = event.get("stat"), True
        elif kind == "planned":
            self.planned.add(event["ns"])
        elif kind == "slice":
            self._slice(event)
        elif kind == "reading":
            self.reading[event["w"]] = int(event["entities"])
            if "written" in event:
                self.reading_written[event["w"]] = int(event["written"])

    def _slice(self, event: dict) -> None:
        self.reading.pop(event.get("w"), None)
        self.reading_written.pop(event.get("w"), None)
        for name, n in (event.get("writes") or {}).items():
            self.writes[name] += int(n)
        n = int(event["entities"])
        self.entities += n
        self.records += int(event.get("records", 0))
        self.errors += int(event.get("errors", 0))
        self.retries += int(event.get("retries", 0))
        unit = self.units.get(event["unit"])
        if unit is None:  # its plan not seen yet (files are read in turn): keep the count
            unit = self.units[event["unit"]] = UnitProgress(event.get("ns", ""), planned=False)
        unit.entities += n
        unit.gaps_done += float(event.get("gaps", 0.0))
        if event.get("range_done"):
            unit.ranges_done += 1

    def namespaces_done(self) -> int:
        """Planned namespaces whose units have all been read."""
        open_ns = {u.namespace for u in self.units.values() if not u.done}
        return len(self.planned - open_ns)

    def snapshot(self, now: float) -> Snapshot:
        entities = self.entities + sum(self.reading.values())
        written = (sum(self.writes[k] for k in WRITTEN) + sum(self.reading_written.values()))
        if not entities:  # the rate counts from the first entity read, not from the launch
            self.history.clear()
        self.history.append((now, entities, written))
        while len(self.history) > 2 and now - self.history[1][0] >= RATE_WINDOW:
            self.history.popleft()
        t0, e0, w0 = self.history[0]
        rate = (entities - e0) / (now - t0) if now - t0 >= 1.0 else None
        write_rate = (written - w0) / (now - t0) if now - t0 >= 1.0 else None
        units = list(self.units.values())
        return Snapshot(
            namespaces=self.namespaces, namespaces_planned=len(self.planned),
            namespaces_done=self.namespaces_done(), ranges=sum(u.ranges for u in units),
            ranges_done=sum(min(u.ranges_done, u.ranges) for u in units), entities=entities,
            records=self.records, errors=self.errors, retries=self.retries,
            estimated=None if self.finished else estimate_total(
                units, self.namespaces, len(self.planned), entities),
            rate=rate, elapsed=now - self.started, finished=self.finished,
            write_mode=self.write_mode, writes={k: v for k, v in self.writes.items() if v},
            written=written, write_rate=write_rate if self.write_mode else None)


def unit_estimate(u: UnitProgress, per_gap: Optional[float],
                  capped_mean: Optional[float]) -> Optional[float]:
    """A unit's estimated entities (see the module's docstring); None: unknown yet."""
    if not u.planned:
        return None
    if u.done:
        return float(u.entities)
    if u.gaps_done > 0 and u.gaps > 0:
        return max(u.entities * u.gaps / u.gaps_done, float(u.entities))
    if u.stat is not None:
        return max(float(u.stat), float(u.entities))
    if u.capped:
        guess = capped_mean
    else:
        guess = u.gaps * per_gap if per_gap is not None else None
    return None if guess is None else max(guess, float(u.entities))


def enough_planned(namespaces: int) -> int:
    """How many namespaces must be planned before the unplanned rest is estimated from them."""
    return min(namespaces, max(3, -(-namespaces // 10)))


def estimate_total(units: list, namespaces: Optional[int], planned: int,
                   entities: int) -> Optional[int]:
    """The estimated total of entities of the whole run; None while it cannot be told."""
    if namespaces is None or not units or planned < enough_planned(namespaces):
        return None
    measured = [u for u in units if u.gaps_done > 0 and u.gaps > 0]
    small = [u for u in measured if not u.capped]
    per_gap = (sum(u.entities for u in small) / sum(u.gaps_done for u in small)
               if small else None)
    large = [unit_estimate(u, None, None) for u in measured if u.capped]
    capped_mean = sum(large) / len(large) if large else None
    if per_gap is None and capped_mean is not None:
        # Only large units measured so far: a small unit's gap is at most as dense as theirs.
        per_gap = min(u.entities / u.gaps_done for u in measured)
    if capped_mean is None and per_gap is not None:
        capped_mean = max((u.gaps for u in units if u.capped), default=0.0) * per_gap
    total = 0.0
    for u in units:
        e = unit_estimate(u, per_gap, capped_mean)
        if e is None:
            return None
        total += e
    if planned < namespaces and planned:  # the rest, as the mean planned namespace
        total += total / planned * (namespaces - planned)
    return max(round(total), entities)


def format_line(s: Snapshot) -> str:
    """The plain progress line (CI, logs, a run on Dataflow with --wait)."""
    parts = []
    if s.namespaces is None:
        return "progress: listing namespaces"
    else:
        parts.append(f"namespaces {s.namespaces_planned}/{s.namespaces} planned, "
                     f"{s.namespaces_done} done")
    parts.append(f"ranges {s.ranges_done}/{s.ranges}")
    read_all = (s.ranges and s.ranges_done >= s.ranges and s.namespaces_planned >= s.namespaces)
    if read_all and not s.finished:
        parts.append(f"{s.entities:,} entities, all read; finishing (hooks, files, summary)")
    elif s.estimated is not None and not s.finished:
        parts.append(f"{s.entities:,} of ~{s.estimated:,} entities ({s.fraction:.0%})")
    else:
        parts.append(f"{s.entities:,} entities")
    if s.records:
        parts.append(f"{s.records:,} records")
    if s.errors:
        parts.append(f"{s.errors:,} failed")
    if s.rate is not None and s.entities and not (read_all and not s.finished):
        parts.append(f"{s.rate:,.0f}/s")
    if s.write_mode:
        parts.append(format_writes(s, rate=not (read_all and not s.finished)))
    eta = s.eta
    if s.finished:
        parts.append(f"done in {format_seconds(s.elapsed)}")
    elif eta is not None and not read_all:
        parts.append(f"ETA {format_seconds(eta)}")
    return "progress: " + "; ".join(parts)


def format_writes(s: Snapshot, rate: bool = True) -> str:
    """``writes: 120 (changed 120), 40/s``; a dry run's ``dry run, would write: ...``."""
    detail = ", ".join(f"{k} {s.writes[k]:,}" for k in WRITTEN if s.writes.get(k))
    trouble = ", ".join(f"{k} {s.writes[k]:,}" for k in WRITE_TROUBLE if s.writes.get(k))
    detail = "; ".join(p for p in (detail, trouble) if p)
    head = ("dry run, would write" if s.write_mode == "dry_run"
            else f"writes ({s.write_mode})")
    text = f"{head} {s.written:,}" + (f" ({detail})" if detail else "")
    if rate and s.write_rate is not None and s.written:
        text += f", {s.write_rate:,.0f}/s"
    return text


def format_seconds(t: float) -> str:
    """``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    t = max(int(round(t)), 0)
    if t < 60:
        return f"{t} s"
    if t < 3600:
        return f"{t // 60} min {t % 60:02d} s"
    return f"{t // 3600} h {t % 3600 // 60:02d} min"


def plan_gaps(restriction: Any) -> float:
    """The sample gaps of an initial range: a key range of k samples has k + 1; a value
    range counts as one."""
    if isinstance(restriction, KeyRange):
        return float(len(restriction.samples) + 1)
    return 1.0


def gaps_passed(restriction: Any, last_claimed: Any, done: bool) -> float:
    """The sample gaps a slice passed: of its restriction's samples, those at or before its
    last claimed key, and the final gap too once the restriction is done. (A checkpoint keeps
    only the samples after the last claim, a split shares them out, so the slices of a range
    add up to its ``plan_gaps``.)"""
    if done:
        return plan_gaps(restriction)
    if not isinstance(restriction, KeyRange) or last_claimed is None:
        return 0.0
    last = sort_key(last_claimed, restriction.order)
    return float(sum(1 for s in restriction.samples if sort_key(s, restriction.order) <= last))
