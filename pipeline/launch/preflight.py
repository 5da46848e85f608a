"""The checks made before anything is launched: fail fast, within seconds and before a long
run, on what the user can fix (a job whose records would have nowhere to go, Datastore
unreachable or no credentials, a namespace that does not exist, a kind without entities, a
missing index: every kind that lacks one).

Records never vanish silently: a job that yields them needs somewhere to put them: files
(``--output``), BigQuery (``--bigquery_table``), or nowhere on purpose (``--discard_records``).
A job declares on ``JobSpec.yields_records`` that it yields records; run with none of the three
it is refused at launch, naming them (``check_records_have_a_sink``). A job that only counts
(the default declaration) needs none; should it yield a record anyway with no sink, the reading
step fails the run at that record (``pipeline.graph.apply``). Writes back to Datastore
(``migrate``, ``Put``/``Delete``) are not records and need no sink: their own checks (a dry run
by default, the undo log's place) are ``resolve.write_config``'s."""
from __future__ import annotations

import logging
from typing import Optional

from google.api_core import exceptions as gexc

from pipeline.config import DatastoreTarget, RunConfig
from pipeline.core.keyrange import KeyRange
from pipeline.core.namespaces import require_namespaces
from pipeline.core.retry import LaunchRetry
from pipeline.datastore import retry
from pipeline.datastore.client import EMULATOR_ENV, client, fetch
from pipeline.datastore.errors import explain, missing_indexes
from pipeline.datastore.metadata import list_kinds, list_namespaces
from pipeline.datastore.queries import key_range_query, value_query
from pipeline.errors import QueryError, UsageError
from pipeline.graph.restore import location_files
from pipeline.sinks.files.undo import check_files as check_undo_files

log = logging.getLogger(__name__)


#: For ALL_KINDS, the launch lists the kinds of at most this many namespaces (to find entities
#: and each kind's first namespace for the query probe).
KIND_LISTING_NAMESPACES = 50


def check_before_launch(run: RunConfig, allow_empty_kind: bool = False,
                        launch: Optional[LaunchRetry] = None) -> list[str]:
    """Listed namespaces exist, every listed kind has entities in some namespace read (any kind,
    for ALL_KINDS), and the queries the run will make are accepted (indexes, each kind's).
    Returns the namespaces. ``launch``: Datastore's retries in this launch (a new one if None)."""
    read = run.read
    c = client(read.target)
    rq = read.query
    launch = launch if launch is not None else LaunchRetry(read.retry)
    existing = reachable_namespaces(c, run, launch)
    if run.job.spec.reads_undo_log:
        return _check_undo_log(run)
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
    if rq.kinds is not None:
        found = _find_listed_kinds(c, run, launch, to_read)
        missing = [k for k in rq.kinds if k not in found]
    else:
        found = _find_any_kinds(c, run, launch, to_read)
        missing = [] if found else ["*"]
    if missing:
        where = "the selected namespaces" if rq.namespaces is not None else "any namespace"
        if allow_empty_kind:
            log.warning("%s: no entities in %s", _kinds_label(missing), where)
        else:
            sample = namespaces[:5]
            kinds = sorted({k for ns in sample
                            for k in _launch_call(run, launch,
                                                  lambda policy: list_kinds(c, ns, policy),
                                                  "listing kinds", ns)})
            raise UsageError(
                f"{_kinds_label(missing)} {'has' if len(missing) == 1 else 'have'} no entities "
                f"in {where}; kinds found: {', '.join(kinds) or '(none)'} (pass "
                "--allow_empty_kind=true to run anyway)")
        if not found:
            return namespaces
    _probe_queries(c, run, launch, found)
    return namespaces


def _check_undo_log(run: RunConfig) -> list:
    """restore_entities: the undo log is there and holds files."""
    location = run.job.spec.undo_location
    try:
        files = location_files(location)
    except Exception as e:
        raise UsageError(f"the undo log {location} cannot be read: {type(e).__name__}: "
                         f"{e}") from None
    if not files:
        raise UsageError(f"no undo log at {location}: give the undo_log a run's summary names "
                         "(OUTPUT/JOB/runs/RUN/undo), or a backup's OUTPUT/backup_entities/"
                         "namespaces")
    check_undo_files(files)  # local files: their first lines are undo records
    what = "backup" if location.rstrip("/").endswith("/namespaces") else "undo log"
    log.info("restoring from the %s %s: %d file(s)", what, location, len(files))
    return []


def _kinds_label(kinds: list) -> str:
    if kinds == ["*"]:
        return "no kind (kind=*)"
    if len(kinds) == 1:
        return f"kind {kinds[0]!r}"
    return "kinds " + ", ".join(repr(k) for k in kinds)


def _find_listed_kinds(c, run: RunConfig, launch: LaunchRetry, namespaces: list) -> dict:
    """kind -> the first namespace holding one of its entities."""
    read = run.read
    found: dict = {}
    for kind in read.query.kinds:
        for ns in namespaces:
            q = c.query(kind=kind, namespace=ns or None)
            q.keys_only()
            if _launch_call(run, launch, lambda policy: list(fetch(q, policy, limit=1,
                                                    read_time=read.read_time)),
                            f"looking for {kind} entities", ns, kind):
                found[kind] = ns
                break
    return found


def _find_any_kinds(c, run: RunConfig, launch: LaunchRetry, namespaces: list) -> dict:
    """kind -> its first namespace, from the ``__kind__`` listings of up to
    ``KIND_LISTING_NAMESPACES`` namespaces."""
    found: dict = {}
    for ns in namespaces[:KIND_LISTING_NAMESPACES]:
        for kind in _launch_call(run, launch,
                                 lambda policy: list_kinds(c, ns, policy, run.read.read_time),
                                 "listing kinds", ns):
            found.setdefault(kind, ns)
    return found


def _unreachable_hint(target: DatastoreTarget) -> str:
    if target.emulator_host:
        host, _, port = target.emulator_host.rpartition(":")
        local = host in ("127.0.0.1", "localhost", "::1", "[::1]")
        start = (f"`datastore-mapper emulator --project {target.project}"
                 + (f" --port {port}`" if port.isdigit() and port != "8081" else "`"))
        return (f"start one with {start} in another shell" if local
                else f"start the emulator there ({start} starts one on this machine)") + \
            f", or point --emulator_host / {EMULATOR_ENV} at the one that runs"
    return (f"check the network and --project/--database; for the emulator pass --emulator_host "
            f"HOST:PORT or set {EMULATOR_ENV}; credentials: `gcloud auth application-default "
            "login`")


def _launch_call(run: RunConfig, launch: LaunchRetry, fn, what: str, namespace: str,
                 kind: Optional[str] = None):
    """A launch check's call, ``fn(policy)``, under ``launch`` (``retry.launch_call``): a
    refused connection or an unknown host is one line at once; other transient errors are
    retried for the launch's short deadline until Datastore has answered once, for the run's
    own (``--datastore_deadline``) after."""
    target = run.read.target
    deadline = launch.policy().deadline
    try:
        return retry.launch_call(fn, what, launch, where=target.describe())
    except retry.DatastoreUnreachable as e:
        why = ("no Datastore answers there" if "(not gRPC)" in str(e)
               else "nothing answered there yet")
        raise UsageError(f"{target.describe()} is unreachable (not retried: {why}): {e}; "
                         f"{_unreachable_hint(target)}") from None
    except retry.DatastoreUnavailable as e:
        raise UsageError(f"{target.describe()} is unreachable (checked for {deadline:g} s "
                         f"before reading anything): {e}; {_unreachable_hint(target)}") from None
    except gexc.GoogleAPICallError as e:
        raise explain(e, run.read.query, namespace, what, kind) from None


def reachable_namespaces(c, run: RunConfig, launch: LaunchRetry) -> list[str]:
    """The namespaces, listed: the first call of a run."""
    return _launch_call(run, launch,
                        lambda policy: list_namespaces(c, policy, run.read.read_time),
                        "listing namespaces", "")


def _probe_queries(c, run: RunConfig, launch: LaunchRetry, found: dict) -> None:
    """Run the read query's exact shape once (limit 1) per kind, in a namespace that holds it:
    a missing index shows here, for every kind that lacks one at once. Without filters, an
    ancestor or a value range the built-in indexes serve every kind, so one probe is enough."""
    rq = run.read.query
    narrow = bool(rq.equalities or rq.ancestor or rq.prop_range)
    items = sorted(found.items()) if narrow else sorted(found.items())[:1]
    lacking = []
    for kind, ns in items:
        try:
            _probe_query(c, run, launch, ns, kind)
        except QueryError as e:
            if "composite index" not in str(e):
                raise
            lacking.append((kind, ns, e))
    if len(lacking) == 1:
        raise lacking[0][2]
    if lacking:
        raise missing_indexes(rq, [kind for kind, _, _ in lacking])


def _probe_query(c, run: RunConfig, launch: LaunchRetry, namespace: str, kind: str) -> None:
    read = run.read
    rq = read.query
    if rq.prop_range is None:
        q = key_range_query(c, rq, namespace, kind, KeyRange(order=read.order), rq.keys_only)
    else:
        r = rq.prop_range
        q = value_query(c, rq, namespace, kind, r.prop, r.lo, r.lo_inclusive, r.hi,
                        r.hi_inclusive, order=(r.prop, "__key__"))
    _launch_call(run, launch,
                 lambda policy: list(fetch(q, policy, limit=1, read_time=read.read_time)),
                 "the read query", namespace, kind)


# --- where the records go --------------------------------------------------------------------

#: The choices a job's records have, as the refusal names them.
CHOICES = ("--output DIR (one file per namespace), --bigquery_table [PROJECT:]DATASET.TABLE "
           "(streamed), or --discard_records (counted, kept nowhere)")


def has_a_sink(run: RunConfig, bigquery_table: Optional[str]) -> bool:
    out = run.output
    return bool(out.directory or bigquery_table or out.discard_records)


def check_records_have_a_sink(run: RunConfig, bigquery_table: Optional[str]) -> None:
    """Refuse a job that declares records when the run has nowhere for them."""
    if run.job.spec.yields_records and not has_a_sink(run, bigquery_table):
        raise UsageError(f"job {run.job.name} yields records, and this run has nowhere to put "
                         f"them: pass {CHOICES}")
