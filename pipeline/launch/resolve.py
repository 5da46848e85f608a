"""From options to a ``RunConfig``: the job, its parameters and its query resolved once, in UTC,
at launch."""
from __future__ import annotations

import datetime as dt
from typing import Optional

from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from pipeline.api.job import Params
from pipeline.api.query import resolve as resolve_query
from pipeline.api.registry import get_job, load_modules
from pipeline.config import (
    DatastoreTarget,
    JobConfig,
    OutputConfig,
    ReadConfig,
    RunConfig,
)
from pipeline.core.keyorder import StringOrder, default_string_order
from pipeline.core.retry import RetryPolicy
from pipeline.errors import JobFailed, MapperError, UsageError
from pipeline.launch.beam_options import MapperOptions
from pipeline.launch.options import MAX_SAMPLES, parse_read_time
from pipeline.sinks.files.layout import DEAD_LETTER_FILE, SUMMARY_FILE, job_path


def job_params(pairs_lists, job_cls, now: dt.datetime) -> Params:
    """``--params`` (repeatable) -> the job's Params; a parameter it does not list is refused."""
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


def resolve(options: PipelineOptions, now: Optional[dt.datetime] = None) -> RunConfig:
    """Resolve the job, its parameters and its query once, in UTC, at launch."""
    m = options.view_as(MapperOptions)
    now = now or dt.datetime.now(dt.timezone.utc)
    project = options.view_as(GoogleCloudOptions).project
    if not project:
        raise UsageError("--project is required (the Google Cloud project; any id works with "
                         "the emulator)")
    if not m.job:
        raise UsageError("--job is required; --list_jobs shows the registered jobs")
    if m.shards * m.oversampling > MAX_SAMPLES:
        raise UsageError(f"--shards {m.shards} x --oversampling {m.oversampling} = "
                         f"{m.shards * m.oversampling} scatter keys per namespace: at most "
                         f"{MAX_SAMPLES} are sampled; lower one of them")
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
    rq = resolve_query(query)
    if m.namespaces is not None:
        rq = rq.with_namespaces(m.namespaces)
    order = (default_string_order(m.emulator_host) if m.key_order == "auto"
             else StringOrder(m.key_order))
    output = m.output.rstrip("/") if m.output else None
    dead_letter = m.dead_letter or (job_path(output, job_cls.name, DEAD_LETTER_FILE)
                                    if output else None)
    if m.max_errors and not dead_letter:
        raise UsageError(f"--max_errors {m.max_errors} needs a place for the entities that fail: "
                         "pass --output (they go to OUTPUT/JOB/dead_letter.jsonl) or "
                         "--dead_letter=FILE")
    return RunConfig(
        job=JobConfig(spec=job, name=job_cls.name, params=params, max_counters=m.max_counters,
                      started=now, max_errors=m.max_errors),
        read=ReadConfig(
            target=DatastoreTarget(project=project, database=m.database,
                                   emulator_host=m.emulator_host),
            query=rq, read_time=parse_read_time(m.read_time, now), order=order, shards=m.shards,
            oversampling=m.oversampling, slice_entities=m.slice_entities,
            slice_seconds=m.slice_seconds, query_entities=m.query_entities,
            retry=RetryPolicy(deadline=m.datastore_deadline), progress_seconds=m.progress_seconds,
            read_time_option=m.read_time, reads_in_flight=m.reads_in_flight),
        output=OutputConfig(
            directory=output,
            summary_path=job_path(output, job_cls.name, SUMMARY_FILE) if output else None,
            job_file=bool(m.job_file), dead_letter=dead_letter))
