"""BigQuery's launch-time work: the sink's settings from the options, the table's schema
(declared by the job, or made from a sample of the kind), and the checks made before any entity
is read, with a short deadline: BigQuery reachable, the dataset and a fixed table there or
created, and empty when ``--bigquery_write_disposition=empty``."""
from __future__ import annotations

import dataclasses
import logging
from typing import Any, Optional

import google.auth.exceptions
from google.api_core import exceptions as gexc

from pipeline.config import RunConfig
from pipeline.core.retry import LaunchRetry
from pipeline.datastore import retry as datastore_retry
from pipeline.datastore.client import client as datastore_client
from pipeline.datastore.client import fetch
from pipeline.datastore.errors import explain
from pipeline.datastore.metadata import kinds_of, list_namespaces
from pipeline.datastore.queries import base_query
from pipeline.errors import JobFailed, MapperError, UsageError
from pipeline.sinks.bigquery import service
from pipeline.core.export_format import columns_from_rows, typed_row
from pipeline.sinks.bigquery.settings import STREAMING_RETRY, BigQuerySettings
from pipeline.sinks.bigquery.tables import check_table_name, parse_table

log = logging.getLogger(__name__)

#: A launch-time schema sample is spread over at most this many namespaces.
SAMPLE_NAMESPACES = 50


def settings_from_options(run: RunConfig, options: Any) -> Optional[BigQuerySettings]:
    """The sink's settings from the options (a ``MapperOptions`` view), or None when the run
    does not stream; no schema yet (see ``prepare``)."""
    job = run.job.spec
    if not options.bigquery_table:
        if job.streams_to_bigquery:
            raise UsageError(f"job {run.job.name} streams into BigQuery: pass --bigquery_table="
                             "[PROJECT:]DATASET.TABLE (TABLE may contain {namespace})")
        return None
    try:
        table = parse_table(options.bigquery_table, run.read.target.project)
    except ValueError as e:
        raise UsageError(f"--bigquery_table: {e}") from None
    if not (job.defines("bigquery_schema") or job.typed_rows):
        raise UsageError(
            f"job {run.job.name} declares no BigQuery schema, so its records cannot be "
            "streamed: give it a bigquery_schema(params) method returning the table's fields "
            "(BigQuery's JSON schema), or use a job that streams whole entities "
            "(stream_entities)")
    dead = run.output.dead_letter
    if not dead:
        raise UsageError("--bigquery_table needs a place for rows BigQuery rejects: pass "
                         "--output (they go to OUTPUT/JOB/dead_letter.jsonl) or "
                         "--dead_letter=FILE")
    return BigQuerySettings(
        table=table, schema=(), create=bool(options.bigquery_create),
        disposition=options.bigquery_write_disposition,
        emulator_host=options.bigquery_emulator_host, dead_letter=dead,
        max_bad_rows=options.bigquery_max_bad_rows,
        retry=STREAMING_RETRY.with_deadline(options.bigquery_deadline))


def _spread(namespaces: list, n: int) -> list:
    if len(namespaces) <= n:
        return namespaces
    step = len(namespaces) / n
    return [namespaces[int(i * step)] for i in range(n)]


def sample_typed_rows(run: RunConfig, n: int, namespaces: Optional[list] = None,
                      launch: Optional[LaunchRetry] = None) -> dict:
    """kind -> up to ``n`` of its entities, as typed rows, spread over up to 50 of the run's
    namespaces. Costs one query per (namespace, kind) sampled (plus one ``__kind__`` listing
    per namespace for ALL_KINDS); a kind stops being sampled once it has ``n`` rows. Each call
    is retried as the launch checks' are (``launch``: Datastore's retries in this launch)."""
    read = run.read
    c = datastore_client(read.target)
    launch = launch if launch is not None else LaunchRetry(read.retry)
    where_ = read.target.describe()

    def call(fn, what: str):
        return datastore_retry.launch_call(fn, what, launch, where=where_)

    if namespaces is None:
        namespaces = (list(read.query.namespaces) if read.query.namespaces is not None
                      else call(lambda policy: list_namespaces(c, policy, read.read_time),
                                "listing namespaces"))
    namespaces = _spread(list(namespaces), SAMPLE_NAMESPACES)
    where: dict = {}  # kind -> the sampled namespaces that may hold it
    for ns in namespaces:
        try:
            kinds = call(lambda policy: kinds_of(c, read.query.kinds, ns, policy,
                                                 read.read_time), "listing kinds")
        except gexc.GoogleAPICallError as e:
            raise explain(e, read.query, ns, "listing kinds for the BigQuery schema") from None
        for kind in kinds:
            where.setdefault(kind, []).append(ns)
    rows: dict = {}
    for kind, kind_namespaces in where.items():
        got: list = []
        per = max(1, -(-n // len(kind_namespaces)))
        for ns in kind_namespaces:
            q = base_query(c, read.query, ns, kind, keys_only=False)
            try:
                found = call(lambda policy: list(fetch(q, policy, limit=min(per, n - len(got)),
                                                       read_time=read.read_time)),
                             f"sampling {kind} entities")
            except gexc.GoogleAPICallError as e:
                raise explain(e, read.query, ns, "sampling entities for the BigQuery schema",
                              kind) from None
            got.extend(typed_row(e) for e in found)
            if len(got) >= n:
                break
        rows[kind] = got
    return rows


def _schema(run: RunConfig, sample_size: int, namespaces: Optional[list],
            launch: Optional[LaunchRetry]) -> tuple:
    """(schema fields, kind -> the export's columns, or None): declared by the job (one schema
    for every table), or made from a sample of each kind for a job yielding typed rows."""
    job = run.job
    try:
        declared = job.spec.bigquery_schema(job.params)
    except MapperError:
        raise
    except Exception as e:
        raise JobFailed(f"job {job.name}: bigquery_schema() failed: "
                        f"{type(e).__name__}: {e}") from e
    if declared is not None:
        return [f.to_api_repr() if hasattr(f, "to_api_repr") else dict(f) for f in declared], None
    if not job.spec.typed_rows:
        raise UsageError(f"job {job.name}: bigquery_schema() returned no schema; return the "
                         "table's fields (BigQuery's JSON schema)")
    by_kind = sample_typed_rows(run, sample_size, namespaces, launch)
    columns = {kind: columns_from_rows(rows) for kind, rows in by_kind.items()}
    for kind, rows in sorted(by_kind.items()):
        log.info("BigQuery schema of %s made from %d sampled entities: %d columns", kind,
                 len(rows), len(columns[kind]["schema"]))
    schema = (columns[run.read.query.kinds[0]]["schema"]
              if run.read.query.kinds and len(run.read.query.kinds) == 1
              and run.read.query.kinds[0] in columns else [])
    return schema, columns


def _units(run: RunConfig, namespaces: list, launch: Optional[LaunchRetry]) -> list:
    """(namespace, kind) of every unit known at launch (kinds listed for ALL_KINDS)."""
    read = run.read
    if read.query.kinds is not None:
        return [(ns, kind) for ns in namespaces for kind in read.query.kinds]
    c = datastore_client(read.target)
    launch = launch if launch is not None else LaunchRetry(read.retry)
    return [(ns, kind) for ns in namespaces
            for kind in datastore_retry.launch_call(
                lambda policy: kinds_of(c, None, ns, policy, read.read_time), "listing kinds",
                launch, where=read.target.describe())]


def prepare(run: RunConfig, options: Any, namespaces: Optional[list] = None,
            datastore: Optional[LaunchRetry] = None) -> Optional[BigQuerySettings]:
    """The sink's settings, with the table's schema, checked against BigQuery before any entity
    is read; None when the run does not stream. ``namespaces``: the run's, when the launch
    checks listed them (for the tables of a ``{namespace}`` template); ``datastore``:
    Datastore's retries in this launch (for the schema's sample). BigQuery's checks are retried
    like Datastore's (``LaunchRetry``): a refused connection or an unknown host fails at once,
    other transient errors get a short deadline until BigQuery has answered once, and
    ``--bigquery_deadline`` after."""
    settings = settings_from_options(run, options)
    if settings is None:
        return None
    spec = settings.table
    rq = run.read.query
    job = run.job.spec
    if rq.per_kind and job.typed_rows and not spec.by_kind and not job.defines("bigquery_table"):
        raise UsageError(
            f"--bigquery_table {options.bigquery_table}: the job streams whole entities of "
            f"{rq.kinds_text()}, whose columns differ from kind to kind, so each kind needs a "
            f"table of its own: put {{kind}} in the table name (e.g. "
            f"{spec.dataset}.{spec.table}_{{kind}})")
    schema, columns = _schema(run, options.bigquery_schema_sample, namespaces, datastore)
    if not schema and not columns:
        raise UsageError(f"job {run.job.name}: its BigQuery schema has no fields")
    settings = dataclasses.replace(settings, schema=tuple(schema), columns=columns)
    units = _units(run, namespaces or [], datastore) if spec.templated else []
    for ns, kind in units:  # each unit's table name within BigQuery's limit, before any change
        try:
            check_table_name(spec, ns, kind)
        except ValueError as e:
            raise UsageError(f"--bigquery_table: {e}") from None
    launch = LaunchRetry(settings.retry)  # BigQuery's retries in this launch
    try:
        c = service.client(run.read.target.project, settings.emulator_host)
        if not spec.templated and not (columns and rq.per_kind):
            fields = settings.schema_for(rq.kinds[0]) if columns else None
            service.ensure_table(c, settings, spec, launch, fields)
            tables = [spec]
        else:
            service.ensure_dataset(c, settings, spec, launch)
            tables = sorted({spec.for_unit(ns, kind) for ns, kind in units}, key=str)
        if settings.disposition == "empty":
            full = [str(t) for t in tables
                    if not service.table_is_empty(c, settings, t, launch)]
            if full:
                raise UsageError(
                    f"--bigquery_write_disposition=empty, but {', '.join(full[:5])} already "
                    "hold(s) rows: empty or drop the table, or use append")
    except MapperError:
        raise
    except gexc.Forbidden as e:
        raise UsageError(f"{settings.where} refused access to {spec.dataset_id}: "
                         f"{e.message}") from None
    except gexc.GoogleAPICallError as e:
        raise UsageError(f"{settings.where} answered an error for {spec}: {e}") from None
    except google.auth.exceptions.DefaultCredentialsError as e:
        raise UsageError(f"no Google Cloud credentials for BigQuery ({e}): run `gcloud auth "
                         "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS; for "
                         "an emulator pass --bigquery_emulator_host") from None
    except Exception as e:  # unreachable: connection refused, DNS, the retry deadline
        why = launch.refused(e)
        checked = (f"{why}, not retried: nothing answered there yet" if why else
                   f"checked for {launch.policy().deadline:g} s before reading anything")
        raise UsageError(f"{settings.where} is unreachable ({checked}): {type(e).__name__}: "
                         f"{str(e)[:300]}") from None
    return settings
