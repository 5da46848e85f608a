"""Reading Datastore's statistics (``pipeline.core.statistics``): entity counts that let the
planner sample a big unit at once instead of reading it first.

Statistics are a hint, never needed: when there are none (the emulator, a new database, an app
whose per-namespace statistics Datastore dropped) or they cannot be read, the planner reads
every unit first, and the run is the same, only its plan found otherwise.
"""
from __future__ import annotations

import logging
from typing import Optional

from google.api_core import exceptions as gexc
from google.cloud import datastore
from google.cloud.datastore.query import PropertyFilter

from pipeline.core.namespaces import namespace_label
from pipeline.core.retry import RetryPolicy
from pipeline.core.statistics import (
    NAMESPACE_KIND_STAT,
    NAMESPACE_STAT,
    TOTAL_STAT,
    counts_at,
    newest,
    newest_counts,
)
from pipeline.datastore import retry
from pipeline.datastore.client import fetch

log = logging.getLogger(__name__)


def _newest_total(c: datastore.Client, policy: RetryPolicy, read_time) -> Optional[object]:
    q = c.query(kind=TOTAL_STAT)
    return newest(e.get("timestamp") for e in fetch(q, policy, read_time=read_time))


def big_namespaces(c: datastore.Client, policy: RetryPolicy, read_time, at_least: int,
                   where: str = "Datastore") -> dict:
    """namespace -> entities (all kinds), for the namespaces of at least ``at_least`` entities
    in the newest statistics; {} without statistics. The listing is streamed: only the big
    namespaces are kept."""

    def listing() -> dict:
        ts = _newest_total(c, policy, read_time)
        if ts is None:
            return {}
        q = c.query(kind=NAMESPACE_STAT)
        q.add_filter(filter=PropertyFilter("timestamp", "=", ts))
        rows = ((e.get("subject_namespace"), e.get("timestamp"), e.get("count"))
                for e in fetch(q, policy, read_time=read_time))
        return counts_at(rows, ts, at_least)

    return _hint(listing, "reading the namespace statistics", policy, where)


def kind_counts(c: datastore.Client, namespace: str, policy: RetryPolicy, read_time,
                where: str = "Datastore") -> dict:
    """kind -> entities in ``namespace``, from its newest ``__Stat_Ns_Kind__``; {} without."""

    def listing() -> dict:
        q = c.query(kind=NAMESPACE_KIND_STAT, namespace=namespace or None)
        return newest_counts((e.get("kind_name"), e.get("timestamp"), e.get("count"))
                             for e in fetch(q, policy, read_time=read_time))

    return _hint(listing, f"reading the kind statistics of namespace "
                          f"{namespace_label(namespace)}", policy, where)


def _hint(fn, what: str, policy: RetryPolicy, where: str) -> dict:
    """A statistics listing, or {} when it cannot be had: a hint is never worth failing for
    (transient errors are retried as any call; past the deadline the run's own reads would
    fail the same way)."""
    try:
        return retry.call(fn, what, policy, where=where)
    except gexc.GoogleAPICallError as e:
        log.warning("%s failed (%s: %s): planning without statistics", what, type(e).__name__,
                    e.message)
        return {}
