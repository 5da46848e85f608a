"""Talking to Datastore: clients, the queries the mapper runs, retries, errors.

Thin on purpose: the splitting and claiming logic lives in pure modules; this
module turns their plain data (key paths, value ranges) into client queries.
"""
from __future__ import annotations

import logging
import os
import random
import threading
import time
from typing import Any, Callable, Optional, TypeVar

from google.api_core import exceptions as gexc
from google.cloud import datastore

from pipeline.errors import MapperError, QueryError
from pipeline.keyorder import KeyPath, flat_from_path
from pipeline.keyrange import KeyRange
from pipeline.query import ResolvedQuery
from pipeline.valuerange import ValueRange

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Errors worth retrying: the service was busy or the call timed out.
TRANSIENT = (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError,
             gexc.Aborted, gexc.TooManyRequests, gexc.ResourceExhausted, gexc.GatewayTimeout,
             gexc.BadGateway)

_clients: dict = {}
_clients_lock = threading.Lock()


def client(project: str, database: Optional[str] = None,
           emulator_host: Optional[str] = None) -> datastore.Client:
    """One client per process and database (clients are thread-safe and costly to make)."""
    if emulator_host:
        # Workers get the emulator from the run's options, not from their environment.
        os.environ.setdefault("DATASTORE_EMULATOR_HOST", emulator_host)
    key = (project, database or "", emulator_host or "")
    with _clients_lock:
        c = _clients.get(key)
        if c is None:
            c = datastore.Client(project=project, database=database or None)
            _clients[key] = c
        return c


def key_of(c: datastore.Client, path: KeyPath, namespace: str) -> datastore.Key:
    return c.key(*flat_from_path(path), namespace=namespace or None)


def base_query(c: datastore.Client, rq: ResolvedQuery, namespace: str, *,
               keys_only: bool, with_filters: bool = True) -> datastore.Query:
    q = c.query(kind=rq.kind, namespace=namespace or None)
    if with_filters:
        for prop, value in rq.equalities:
            q.add_filter(filter=datastore.query.PropertyFilter(prop, "=", value))
        if rq.ancestor:
            q.ancestor = key_of(c, rq.ancestor, namespace)
    if keys_only:
        q.keys_only()
    return q


def key_range_query(c: datastore.Client, rq: ResolvedQuery, namespace: str, rng: KeyRange,
                    keys_only: bool) -> datastore.Query:
    q = base_query(c, rq, namespace, keys_only=keys_only)
    PF = datastore.query.PropertyFilter
    if rng.start is not None:
        q.add_filter(filter=PF("__key__", ">=" if rng.start_inclusive else ">",
                               key_of(c, rng.start, namespace)))
    if rng.end is not None:
        q.add_filter(filter=PF("__key__", "<=" if rng.end_inclusive else "<",
                               key_of(c, rng.end, namespace)))
    q.order = ["__key__"]
    return q


def value_range_query(c: datastore.Client, rq: ResolvedQuery, namespace: str,
                      rng: ValueRange) -> datastore.Query:
    """The sub-range's fixed query, sorted by (value, key): always full entities,
    since an entity's other values decide which sub-range owns it."""
    q = base_query(c, rq, namespace, keys_only=False)
    PF = datastore.query.PropertyFilter
    q.add_filter(filter=PF(rng.prop, ">=" if rng.lo_inclusive else ">", rng.query_lo))
    q.add_filter(filter=PF(rng.prop, "<=" if rng.hi_inclusive else "<", rng.query_hi))
    q.order = [rng.prop, "__key__"]
    return q


def index_yaml(rq: ResolvedQuery, sort_prop: Optional[str]) -> str:
    lines = ["indexes:", f"- kind: {rq.kind}"]
    if rq.ancestor:
        lines.append("  ancestor: yes")
    lines.append("  properties:")
    for prop, _ in rq.equalities:
        lines.append(f"  - name: {prop}")
    if sort_prop:
        lines.append(f"  - name: {sort_prop}")
    return "\n".join(lines)


def explain(err: Exception, rq: ResolvedQuery, namespace: str, what: str) -> MapperError:
    """Turn a client error into a message that says what to do."""
    ns = namespace or "(default)"
    if isinstance(err, gexc.FailedPrecondition) and "index" in str(err).lower():
        sort_prop = rq.prop_range.prop if rq.prop_range else None
        return QueryError(
            f"{what} in namespace {ns} needs a composite index that the database lacks "
            f"({rq.describe()}). Add this entry to index.yaml and deploy it with "
            f"`gcloud datastore indexes create index.yaml`, then wait until it is serving:\n"
            f"{index_yaml(rq, sort_prop)}\n(Datastore said: {err.message})")
    if isinstance(err, (gexc.PermissionDenied, gexc.Unauthenticated)):
        return MapperError(f"{what} in namespace {ns}: access denied ({err.message}); the account "
                           "running the job needs the Datastore User role")
    if isinstance(err, gexc.NotFound):
        return MapperError(f"{what} in namespace {ns}: not found ({err.message}); check --project "
                           "and --database")
    if isinstance(err, gexc.InvalidArgument):
        return QueryError(f"{what} in namespace {ns} was rejected: {err.message}")
    return MapperError(f"{what} in namespace {ns} failed: {type(err).__name__}: {err}")


def with_retries(fn: Callable[[], T], what: str, attempts: int = 6, base_delay: float = 0.5,
                 max_delay: float = 20.0, on_retry: Optional[Callable[[Exception], None]] = None) -> T:
    """Call fn, retrying transient errors with jittered exponential backoff."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except TRANSIENT as e:
            if attempt == attempts:
                raise
            delay = min(max_delay, base_delay * 2 ** (attempt - 1)) * (0.5 + random.random())
            log.warning("%s: transient error (%s), retry %d/%d in %.1fs",
                        what, type(e).__name__, attempt, attempts - 1, delay)
            if on_retry is not None:
                on_retry(e)
            time.sleep(delay)
    raise AssertionError("unreachable")


def namespace_of(key: datastore.Key) -> str:
    """__namespace__ keys: the default namespace is id 1 (emulator) or the empty name."""
    name = key.id_or_name
    return "" if name in (1, "") else str(name)


def list_namespaces(c: datastore.Client, read_time=None) -> list[str]:
    q = c.query(kind="__namespace__")
    q.keys_only()
    return sorted(namespace_of(e.key) for e in fetch(q, read_time=read_time))


def list_kinds(c: datastore.Client, namespace: str) -> list[str]:
    q = c.query(kind="__kind__", namespace=namespace or None)
    q.keys_only()
    return sorted(str(e.key.id_or_name) for e in q.fetch() if not str(e.key.id_or_name).startswith("__"))


def fetch(q: datastore.Query, **kw: Any):
    return q.fetch(**{k: v for k, v in kw.items() if v is not None})
