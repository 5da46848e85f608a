"""The checks made before anything is launched: fail fast, before a long run, on what the
user can fix (a namespace that does not exist, a kind without entities, a missing index)."""
from __future__ import annotations

import logging

from google.api_core import exceptions as gexc

from pipeline.config import RunConfig
from pipeline.core.keyrange import KeyRange
from pipeline.core.namespaces import require_namespaces
from pipeline.datastore.client import client, fetch
from pipeline.datastore.errors import explain
from pipeline.datastore.metadata import list_kinds, list_namespaces
from pipeline.datastore.queries import key_range_query, value_query
from pipeline.errors import UsageError

log = logging.getLogger(__name__)


def check_before_launch(run: RunConfig, allow_empty_kind: bool = False) -> list[str]:
    """Listed namespaces exist, the kind has entities, and the queries the run will make are
    accepted (indexes). Returns the namespaces."""
    read = run.read
    c = client(read.target)
    rq = read.query
    try:
        existing = list_namespaces(c, read.read_time)
    except gexc.GoogleAPICallError as e:
        raise explain(e, rq, "", "listing namespaces") from None
    if rq.namespaces is not None:
        try:
            require_namespaces(rq.namespaces, existing)
        except ValueError as e:
            raise UsageError(str(e)) from None
        namespaces = list(rq.namespaces)
    else:
        namespaces = existing
    found = None
    for ns in namespaces:
        q = c.query(kind=rq.kind, namespace=ns or None)
        q.keys_only()
        if list(fetch(q, limit=1, read_time=read.read_time)):
            found = ns
            break
    if found is None:
        if allow_empty_kind:
            log.warning("kind %s has no entities in the selected namespaces", rq.kind)
            return namespaces
        kinds = sorted({k for ns in namespaces[:5] for k in list_kinds(c, ns)})
        where = "the selected namespaces" if rq.namespaces is not None else "any namespace"
        raise UsageError(
            f"kind {rq.kind!r} has no entities in {where}; kinds found: "
            f"{', '.join(kinds) or '(none)'} (pass --allow_empty_kind=true to run anyway)")
    _probe_query(c, run, found)
    return namespaces


def _probe_query(c, run: RunConfig, namespace: str) -> None:
    """Run the read query's exact shape once (limit 1): a missing index shows here."""
    read = run.read
    rq = read.query
    try:
        if rq.prop_range is None:
            q = key_range_query(c, rq, namespace, KeyRange(order=read.order), rq.keys_only)
        else:
            r = rq.prop_range
            q = value_query(c, rq, namespace, r.prop, r.lo, r.lo_inclusive, r.hi, r.hi_inclusive,
                            order=(r.prop, "__key__"))
        list(fetch(q, limit=1, read_time=read.read_time))
    except gexc.GoogleAPICallError as e:
        raise explain(e, rq, namespace, "the read query") from None
