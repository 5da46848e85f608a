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
