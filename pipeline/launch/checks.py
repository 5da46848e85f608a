"""The checks made before anything is launched: fail fast, within seconds and before a long
run, on what the user can fix (Datastore unreachable or no credentials, a namespace that does
not exist, a kind without entities, a missing index)."""
from __future__ import annotations

import logging

from google.api_core import exceptions as gexc

from pipeline.config import DatastoreTarget, RunConfig
from pipeline.core.keyrange import KeyRange
from pipeline.core.namespaces import require_namespaces
from pipeline.core.retry import LAUNCH_RETRY
from pipeline.datastore import retry
from pipeline.datastore.client import EMULATOR_ENV, client, fetch
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
    existing = reachable_namespaces(c, run)
    if rq.namespaces is not None:
        try:
            require_namespaces(rq.namespaces, existing)
        except ValueError as e:
            raise UsageError(str(e)) from None
        namespaces = list(rq.namespaces)
    else:
        namespaces = existing
    resumed = {r.namespace for r in run.output.resumed}
    to_read = [ns for ns in namespaces if ns not in resumed]
    if resumed and not to_read:
        return namespaces  # a resumed run with nothing left to read: nothing to check
    found = None
    for ns in to_read:
        q = c.query(kind=rq.kind, namespace=ns or None)
        q.keys_only()
        if _launch_call(run, lambda: list(fetch(q, LAUNCH_RETRY, limit=1,
                                                read_time=read.read_time)),
                        f"looking for {rq.kind} entities", ns):
            found = ns
            break
    if found is None:
        if allow_empty_kind:
            log.warning("kind %s has no entities in the selected namespaces", rq.kind)
            return namespaces
        kinds = sorted({k for ns in to_read[:5]
                        for k in _launch_call(run, lambda: list_kinds(c, ns, LAUNCH_RETRY),
                                              "listing kinds", ns)})
        where = "the selected namespaces" if rq.namespaces is not None else "any namespace"
        raise UsageError(
            f"kind {rq.kind!r} has no entities in {where}; kinds found: "
            f"{', '.join(kinds) or '(none)'} (pass --allow_empty_kind=true to run anyway)")
    _probe_query(c, run, found)
    return namespaces


def _unreachable_hint(target: DatastoreTarget) -> str:
    if target.emulator_host:
        return ("start it (`gcloud beta emulators datastore start --host-port "
                f"{target.emulator_host}`), or point --emulator_host / {EMULATOR_ENV} at the "
                "one that runs")
    return (f"check the network and --project/--database; for the emulator pass --emulator_host "
            f"HOST:PORT or set {EMULATOR_ENV}; credentials: `gcloud auth application-default "
            "login`")


def _launch_call(run: RunConfig, fn, what: str, namespace: str):
    """A launch check's call: retried for the launch's short deadline; an unreachable
    Datastore (or one that refuses the credentials) is one line within seconds."""
    read = run.read
    target = read.target
    try:
        return retry.call(fn, what, LAUNCH_RETRY, where=target.describe())
    except retry.DatastoreUnavailable as e:
        raise UsageError(f"{target.describe()} is unreachable (checked for "
                         f"{LAUNCH_RETRY.deadline:.0f} s before reading anything): {e}; "
                         f"{_unreachable_hint(target)}") from None
    except gexc.GoogleAPICallError as e:
        raise explain(e, read.query, namespace, what) from None


def reachable_namespaces(c, run: RunConfig) -> list[str]:
    """The namespaces, listed: the first call of a run."""
    return _launch_call(run, lambda: list_namespaces(c, LAUNCH_RETRY, run.read.read_time),
                        "listing namespaces", "")


def _probe_query(c, run: RunConfig, namespace: str) -> None:
    """Run the read query's exact shape once (limit 1): a missing index shows here."""
    read = run.read
    rq = read.query
    if rq.prop_range is None:
        q = key_range_query(c, rq, namespace, KeyRange(order=read.order), rq.keys_only)
    else:
        r = rq.prop_range
        q = value_query(c, rq, namespace, r.prop, r.lo, r.lo_inclusive, r.hi, r.hi_inclusive,
                        order=(r.prop, "__key__"))
    _launch_call(run, lambda: list(fetch(q, LAUNCH_RETRY, limit=1, read_time=read.read_time)),
                 "the read query", namespace)
