"""Narrow queries: where a slice's next query ends.

A slice reads its range in order, but each query it runs ends at a scatter sample a
few samples ahead of where it starts (``query_end``), not at the range's end: the
Datastore emulator evaluates a query's whole key range for every page it returns, so
a query over 2,000 keys pages several times faster than one over 20,000 (measured:
about 1,900 against 400 entities/s from one thread). Production Datastore does not
care; there the extra queries cost a round trip each.

How many samples ahead: samples are spread like the data, but how many entities one
sample gap holds is not known in advance (production keeps one scatter key per ~128
entities and the planner samples a few hundred per namespace; the emulator marks about
half). ``SampleDensity`` learns it from the narrow queries a worker has run to their end
in a namespace, and ``step`` turns a target number of entities per query into samples.
Pure: no Datastore here.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

from pipeline.core.keyorder import KeyPath, sort_key
from pipeline.core.keyrange import KeyRange

#: Samples per query before anything is known about their density.
DEFAULT_STEP = 4


def query_end(rng: KeyRange, step: int) -> Optional[KeyPath]:
    """The ``step``-th of the range's samples strictly after its start: the (exclusive) end
    of the next query. None when fewer than ``step`` samples are left (or step < 1): the
    query then runs to the range's own end."""
    if step < 1:
        return None
    if rng.start is None:
        after = rng.samples
    else:
        lo = sort_key(rng.start, rng.order)
        after = tuple(s for s in rng.samples if sort_key(s, rng.order) > lo)
    if len(after) < step:
        return None
    end = after[step - 1]
    return end if rng.before_end(end) else None


@dataclasses.dataclass
class SampleDensity:
    """Entities per sample gap, from narrow queries read to their end (one per unit and
    worker: the planner samples each unit alike, so its ranges share it).

    ``prior``: what the worker learnt over every unit (the backend marks scatter keys at one
    rate for all kinds), used until this unit has its own measure: a small unit read after
    others is one query, not several of ``DEFAULT_STEP`` samples."""

    entities: int = 0
    gaps: int = 0
    prior: Optional["SampleDensity"] = dataclasses.field(default=None, repr=False,
                                                         compare=False)

    def observe(self, entities: int, gaps: int) -> None:
        if gaps > 0 and entities >= 0:
            self.entities += entities
            self.gaps += gaps
            if self.prior is not None:
                self.prior.observe(entities, gaps)

    @property
    def per_gap(self) -> Optional[float]:
        if self.gaps:
            return self.entities / self.gaps
        return self.prior.per_gap if self.prior is not None else None

    def step(self, target_entities: int) -> int:
        """Samples per query to read about ``target_entities``; DEFAULT_STEP until measured."""
        per_gap = self.per_gap
        if per_gap is None:
            return DEFAULT_STEP
        if per_gap <= 0:
            return 4 * DEFAULT_STEP  # gaps seen so far were empty: stride faster
        return max(1, round(target_entities / per_gap))
