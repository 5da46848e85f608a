"""From options to a RunPlan, and the checks made before anything is launched."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Optional

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions
from google.api_core import exceptions as gexc
from google.cloud.datastore.query import PropertyFilter

from pipeline import datastore_io as dio
from pipeline.errors import JobFailed, MapperError, UsageError
from pipeline.job import Params
from pipeline.keyorder import StringOrder, default_string_order
from pipeline.keyrange import KeyRange
from pipeline.options import MapperOptions
from pipeline.plan import RunPlan
from pipeline.query import DEFAULT_NAMESPACE_NAME, ResolvedQuery, resolve
from pipeline.registry import get_job, load_modules
from pipeline.transforms import unknown_namespaces_message

log = logging.getLogger(__name__)
READ_TIME_LIMIT = dt.timedelta(days=7)


def parse_read_time(text: Optional[str], now: Optional[dt.datetime]) -> Optional[dt.datetime]:
    if text is None:
        return None
    if text.strip().lower() == "start":
        return now
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--read_time {text!r} is not an RFC 3339 time "
                         "(e.g. 2026-11-27T12:00:00Z) or 'start'") from None
    if t.tzinfo is None:
        raise UsageError(f"--read_time {text!r} needs a time zone (e.g. a trailing Z for UTC)")
    t = t.astimezone(dt.timezone.utc)
    if now is not None:
        if t > now:
            raise UsageError(f"--read_time {text} is in the future")
        if now - t > READ_TIME_LIMIT:
            raise UsageError(f"--read_time {text} is more than 7 days ago: Datastore keeps old "
                             "versions for 1 hour (7 days with point-in-time recovery)")
        if now - t > dt.timedelta(hours=1):
            log.warning("--read_time %s is over an hour ago: it works only with point-in-time "
                        "recovery enabled, and then only at whole minutes", text)
    return t


def job_params(pairs_lists, job_cls, now: dt.datetime) -> Params:
    values: dict[str, str] = {}
    for pairs in pairs_lists:
        for k, v in pairs:
            values[k] = v
    allowed = dict(job_cls.parameters)
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        accepted = ", ".join(f"{k} ({h})" for k, h in allowed.items()) or "none"
        raise UsageError(f"job {job_cls.name} has no parameter {', '.join(map(repr, unknown))}; "
                         f"it accepts: {accepted}")
    return Params(values, now)


def make_plan(options: PipelineOptions, now: Optional[dt.datetime] = None) -> RunPlan:
    """Resolve the job, its parameters and its query once, in UTC, at launch."""
    m = options.view_as(MapperOptions)
    now = now or dt.datetime.now(dt.timezone.utc)
    project = options.view_as(GoogleCloudOptions).project
    if not project:
        raise UsageError("--project is required (the Google Cloud project; any id works with "
                         "the emulator)")
    if not m.job:
        raise UsageError("--job is required; --list_jobs shows the registered jobs")
    load_modules(m.job_module)
    job_cls = get_job(m.job)
    params = job_params(m.params, job_cls, now)
    job = job_cls()
    try:
        query = job.query(params)
    except MapperError:
        raise
    except Exception as e:
        raise JobFailed(f"job {job_cls.name}: query() failed: {type(e).__name__}: {e}") from e
    rq = resolve(query)
    if m.namespaces is not None:
        names = tuple("" if n == DEFAULT_NAMESPACE_NAME else n for n in m.namespaces)
        rq = ResolvedQuery(**{**rq.__dict__, "namespaces": tuple(dict.fromkeys(names))})
    order = (default_string_order(m.emulator_host) if m.key_order == "auto"
             else StringOrder(m.key_order))
    output = m.output.rstrip("/") if m.output else None
    summary_path = FileSystems.join(output, job_cls.name, "summary.json") if output else None
    return RunPlan(
        job=job, job_name=job_cls.name, params=params, query=rq, project=project,
        database=m.database, emulator_host=m.emulator_host,
        read_time=parse_read_time(m.read_time, now), order=order, shards=m.shards,
        oversampling=m.oversampling, slice_entities=m.slice_entities,
        slice_seconds=m.slice_seconds, query_entities=m.query_entities, max_counters=m.max_counters,
        progress_seconds=m.progress_seconds, started=now, output=output,
        summary_path=summary_path, job_file=bool(m.job_file))


def prepare_output(plan: RunPlan, mode: str = "refuse") -> None:
    """``--output_mode``: refuse to write where a previous run left output (OUTPUT/JOB holds
    anything), or remove that output first (``replace``), so old and new files never mix."""
    from pipeline.sinks.files import existing_output, job_dir, remove_output

    if not plan.output:
        return
    found = existing_output(plan.output, plan.job_name)
    if not found:
        return
    where = job_dir(plan.output, plan.job_name)
    if mode == "replace":
        log.info("--output_mode=replace: removing the previous output in %s (%d files)",
                 where, len(found))
        remove_output(plan.output, plan.job_name)
        return
    raise UsageError(
        f"{where} already holds output of a previous run ({len(found)} entries, e.g. "
        f"{sorted(found)[0]}): pass --output_mode=replace to replace it, or choose another "
        "--output")


def check_before_launch(plan: RunPlan, allow_empty_kind: bool = False) -> list[str]:
    """Fail fast, before a long run: listed namespaces exist, the kind has entities,
    and the queries the run will make are accepted (indexes). Returns the namespaces."""
    c = dio.client(plan.project, plan.database, plan.emulator_host)
    rq = plan.query
    try:
        existing = dio.list_namespaces(c, plan.read_time)
    except gexc.GoogleAPICallError as e:
        raise dio.explain(e, rq, "", "listing namespaces") from None
    if rq.namespaces is not None:
        missing = [n for n in rq.namespaces if n not in set(existing)]
        if missing:
            raise UsageError(unknown_namespaces_message(missing, existing))
        namespaces = list(rq.namespaces)
    else:
        namespaces = existing
    found = None
    for ns in namespaces:
        q = c.query(kind=rq.kind, namespace=ns or None)
        q.keys_only()
        if list(dio.fetch(q, limit=1, read_time=plan.read_time)):
            found = ns
            break
    if found is None:
        if allow_empty_kind:
            log.warning("kind %s has no entities in the selected namespaces", rq.kind)
            return namespaces
        kinds = sorted({k for ns in namespaces[:5] for k in dio.list_kinds(c, ns)})
        where = "the selected namespaces" if rq.namespaces is not None else "any namespace"
        raise UsageError(
            f"kind {rq.kind!r} has no entities in {where}; kinds found: "
            f"{', '.join(kinds) or '(none)'} (pass --allow_empty_kind=true to run anyway)")
    _probe_query(c, plan, found)
    return namespaces


def _probe_query(c, plan: RunPlan, namespace: str) -> None:
    """Run the read query's exact shape once (limit 1): a missing index shows here."""
    rq = plan.query
    try:
        if rq.prop_range is None:
            q = dio.key_range_query(c, rq, namespace, KeyRange(order=plan.order), rq.keys_only)
        else:
            r = rq.prop_range
            q = dio.base_query(c, rq, namespace, keys_only=False)
            if r.lo is not None:
                q.add_filter(filter=PropertyFilter(r.prop, ">=" if r.lo_inclusive else ">", r.lo))
            if r.hi is not None:
                q.add_filter(filter=PropertyFilter(r.prop, "<=" if r.hi_inclusive else "<", r.hi))
            q.order = [r.prop, "__key__"]
        list(dio.fetch(q, limit=1, read_time=plan.read_time))
    except gexc.GoogleAPICallError as e:
        raise dio.explain(e, rq, namespace, "the read query") from None


# --- BigQuery streaming (--bigquery_table) ----------------------------------------------------

LAUNCH_DEADLINE = 20.0  # seconds: an unreachable BigQuery fails the launch this fast


def bigquery_settings(plan: RunPlan, m: MapperOptions):
    """The sink's settings from the options (no schema yet: see ``prepare_bigquery``)."""
    from pipeline.sinks.bigquery import DEAD_LETTER_FILE, BigQuerySettings
    from pipeline.sinks.bigquery_tables import parse_table

    job = plan.job
    if not m.bigquery_table:
        if getattr(job, "bigquery_required", False):
            raise UsageError(f"job {plan.job_name} streams into BigQuery: pass --bigquery_table="
                             "[PROJECT:]DATASET.TABLE (TABLE may contain {namespace})")
        return None
    try:
        table = parse_table(m.bigquery_table, plan.project)
    except ValueError as e:
        raise UsageError(f"--bigquery_table: {e}") from None
    if not (hasattr(job, "bigquery_schema") or getattr(job, "bigquery", None) is not None):
        raise UsageError(
            f"job {plan.job_name} declares no BigQuery schema, so its records cannot be "
            "streamed: give it a bigquery_schema(params) method returning the table's fields "
            "(BigQuery's JSON schema), or use a job that streams whole entities "
            "(stream_entities)")
    dead = m.bigquery_dead_letter
    if not dead:
        if not plan.output:
            raise UsageError("--bigquery_table needs a place for rows BigQuery rejects: pass "
                             "--output (they go to OUTPUT/JOB/dead_letter.jsonl) or "
                             "--bigquery_dead_letter=FILE")
        dead = FileSystems.join(plan.output, plan.job_name, DEAD_LETTER_FILE)
    return BigQuerySettings(
        table=table, schema=(), create=bool(m.bigquery_create),
        disposition=m.bigquery_write_disposition, emulator_host=m.bigquery_emulator_host,
        dead_letter=dead, max_bad_rows=m.bigquery_max_bad_rows,
        deadline_seconds=m.bigquery_deadline)


def sample_typed_rows(plan: RunPlan, n: int, namespaces: Optional[list] = None) -> list:
    """Up to ``n`` entities of the query, as typed rows, spread over up to 50 namespaces."""
    from pipeline.sinks.bigquery_json import typed_row

    c = dio.client(plan.project, plan.database, plan.emulator_host)
    if namespaces is None:
        namespaces = (list(plan.query.namespaces) if plan.query.namespaces is not None
                      else dio.list_namespaces(c, plan.read_time))
    if len(namespaces) > 50:
        step = len(namespaces) / 50
        namespaces = [namespaces[int(i * step)] for i in range(50)]
    rows: list = []
    per = max(1, -(-n // max(1, len(namespaces))))
    for ns in namespaces:
        q = dio.base_query(c, plan.query, ns, keys_only=False)
        try:
            got = list(dio.fetch(q, limit=min(per, n - len(rows)), read_time=plan.read_time))
        except gexc.GoogleAPICallError as e:
            raise dio.explain(e, plan.query, ns, "sampling entities for the BigQuery schema") \
                from None
        rows.extend(typed_row(e) for e in got)
        if len(rows) >= n:
            break
    return rows


def prepare_bigquery(plan: RunPlan, m: MapperOptions,
                     namespaces: Optional[list] = None) -> RunPlan:
    """Resolve the table schema, then check BigQuery before any entity is read: reachable (a
    short deadline), the dataset and a fixed table there or created, and empty when
    ``--bigquery_write_disposition=empty``. Returns the plan with its BigQuery settings."""
    import dataclasses

    import google.auth.exceptions
    from google.api_core import exceptions as bqexc

    from pipeline.sinks import bigquery as bq
    from pipeline.sinks.bigquery_json import plan_from_rows

    settings = bigquery_settings(plan, m)
    if settings is None:
        return plan
    job = plan.job
    encode_plan = None
    if hasattr(job, "bigquery_schema"):
        try:
            schema = job.bigquery_schema(plan.params)
        except MapperError:
            raise
        except Exception as e:
            raise JobFailed(f"job {plan.job_name}: bigquery_schema() failed: "
                            f"{type(e).__name__}: {e}") from e
        schema = [f.to_api_repr() if hasattr(f, "to_api_repr") else dict(f) for f in schema]
    else:
        rows = sample_typed_rows(plan, m.bigquery_schema_sample, namespaces)
        encode_plan = plan_from_rows(rows)
        schema = encode_plan["schema"]
        log.info("BigQuery schema made from %d sampled entities: %d columns", len(rows),
                 len(schema))
    if not schema:
        raise UsageError(f"job {plan.job_name}: its BigQuery schema has no fields")
    settings = dataclasses.replace(settings, schema=tuple(schema), encode_plan=encode_plan)
    spec = settings.table
    if spec.templated:  # a namespace's table name within BigQuery's limit, before any change
        from pipeline.sinks.bigquery_tables import check_table_name

        for ns in namespaces or []:
            try:
                check_table_name(spec, ns)
            except ValueError as e:
                raise UsageError(f"--bigquery_table: {e}") from None
    try:
        c = bq.client(plan.project, settings.emulator_host)
        if not spec.templated:
            bq.ensure_table(c, settings, spec, LAUNCH_DEADLINE)
            tables = [spec]
        else:
            from google.cloud import bigquery

            try:
                c.get_dataset(spec.dataset_id, retry=bq.retry(LAUNCH_DEADLINE), timeout=10)
            except bqexc.NotFound:
                if not settings.create:
                    raise UsageError(f"BigQuery dataset {spec.dataset_id} does not exist, and "
                                     "--bigquery_create=false") from None
                c.create_dataset(bigquery.Dataset(spec.dataset_id), exists_ok=True,
                                 retry=bq.retry(LAUNCH_DEADLINE), timeout=10)
            tables = [spec.for_namespace(ns) for ns in (namespaces or [])]
        if settings.disposition == "empty":
            full = [str(t) for t in tables if not bq.table_is_empty(c, t, LAUNCH_DEADLINE)]
            if full:
                raise UsageError(
                    f"--bigquery_write_disposition=empty, but {', '.join(full[:5])} already "
                    "hold(s) rows: empty or drop the table, or use append")
    except MapperError:
        raise
    except bqexc.Forbidden as e:
        raise UsageError(f"{bq.where(settings)} refused access to {spec.dataset_id}: "
                         f"{e.message}") from None
    except bqexc.GoogleAPICallError as e:
        raise UsageError(f"{bq.where(settings)} answered an error for {spec}: {e}") from None
    except google.auth.exceptions.DefaultCredentialsError as e:
        raise UsageError(f"no Google Cloud credentials for BigQuery ({e}): run `gcloud auth "
                         "application-default login` or set GOOGLE_APPLICATION_CREDENTIALS; for "
                         "an emulator pass --bigquery_emulator_host") from None
    except Exception as e:  # unreachable: connection refused, DNS, the retry deadline
        raise UsageError(
            f"{bq.where(settings)} is unreachable (checked for {LAUNCH_DEADLINE:.0f} s before "
            f"reading anything): {type(e).__name__}: {str(e)[:300]}") from None
    return dataclasses.replace(plan, bigquery=settings)
