"""Datastore's statistics, as entity counts per namespace or kind. Pure: no Datastore here.

Production Datastore keeps statistics entities, refreshed every day or two: in the default
namespace one ``__Stat_Namespace__`` per namespace (``subject_namespace``, ``count``,
``bytes``, ``timestamp``), and in each namespace one ``__Stat_Ns_Kind__`` per kind
(``kind_name``, ``count``, ...). Old ones are not deleted at once, so a listing may hold several
generations: only the newest counts (the one of the latest ``timestamp``). Apps with very many
namespaces or kinds lose some of them (Datastore drops per-namespace statistics first), and the
emulator has none: every use of them must work without them.
"""
from __future__ import annotations

from typing import Any, Iterable

#: The statistics kinds the planner reads (the newest generation is that of the newest total).
TOTAL_STAT = "__Stat_Total__"
NAMESPACE_STAT = "__Stat_Namespace__"
NAMESPACE_KIND_STAT = "__Stat_Ns_Kind__"


def newest(timestamps: Iterable[Any]) -> Any:
    """The latest of the statistics' timestamps (None when there is none)."""
    best = None
    for t in timestamps:
        if t is not None and (best is None or t > best):
            best = t
    return best


def counts_at(rows: Iterable[tuple], timestamp: Any, at_least: int = 0) -> dict:
    """(subject, timestamp, count) rows -> subject -> count, from the generation of
    ``timestamp`` only, keeping the subjects that count at least ``at_least`` entities (so a
    listing of tens of thousands of namespaces keeps only the big ones)."""
    out: dict = {}
    for subject, ts, count in rows:
        if subject is None or ts != timestamp or isinstance(count, bool) \
                or not isinstance(count, int) or count < at_least:
            continue
        out[str(subject)] = count
    return out


def newest_counts(rows: Iterable[tuple]) -> dict:
    """A small listing's rows (one namespace's kinds) -> subject -> count of the newest
    generation."""
    rows = list(rows)
    return counts_at(rows, newest(ts for _, ts, _ in rows))
