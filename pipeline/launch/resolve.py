"""From options to a ``RunConfig``: the job, its parameters and its query resolved once, in UTC,
at launch, from the mapper's options as Beam reads them (``MapperOptions``)."""
from __future__ import annotations

import datetime as dt
import logging
import os
import shlex
import sys
import uuid
from typing import Optional, Sequence

from apache_beam.options.pipeline_options import (
    DirectOptions,
    GoogleCloudOptions,
    PipelineOptions,
    StandardOptions,
    TestOptions,
    WorkerOptions,
)

from pipeline.api.mutations import BLIND, DRY_RUN
from pipeline.api.query import resolve as resolve_query
from pipeline.api.registry import job_params
from pipeline.config import (
    DatastoreTarget,
    JobConfig,
    OutputConfig,
    ReadConfig,
    RunConfig,
    WriteConfig,
)
from pipeline.core.keyorder import StringOrder, default_string_order
from pipeline.core.retry import RetryPolicy
from pipeline.errors import JobFailed, MapperError, UsageError
from pipeline.launch.logs import redact
from pipeline.launch.options import (
    add_mapper_arguments,
    cli_name,
    config_fields,
    parse_read_time,
    project_and_job,
    quote_param,
)
from pipeline.sinks.files.layout import (
    CHANGES_FILE,
    DEAD_LETTER_FILE,
    REPORT_FILE,
    SUMMARY_FILE,
    UNDO_DIR,
    job_path,
    run_dir,
)

log = logging.getLogger(__name__)
#: Runners that run here (no ramp-up by default: the emulator, or a test).
LOCAL_RUNNERS = frozenset({"FnApiRunner", "DirectRunner", "BundleBasedDirectRunner",
                           "SwitchingDirectRunner", "PrismRunner"})


class MapperOptions(PipelineOptions):
    """The mapper's own options (``pipeline.launch.options`` defines them), as a Beam
    ``PipelineOptions`` subclass: ``options.view_as(MapperOptions)`` gives them beside Beam's
    own, from the same argv."""

    @classmethod
    def _add_argparse_args(cls, parser):
        add_mapper_arguments(parser)


def is_local(runner: Optional[str]) -> bool:
    """Whether ``runner`` (a name or a dotted path) runs here; none given is Beam's default,
    the DirectRunner."""
    return (runner or "DirectRunner").split(".")[-1] in LOCAL_RUNNERS


def resolve(options: PipelineOptions, now: Optional[dt.datetime] = None,
            argv: Sequence[str] = ()) -> RunConfig:
    """Resolve the job, its parameters and its query once, in UTC, at launch (``argv``: the
    command line, for the command that applies a dry run)."""
    m = options.view_as(MapperOptions)
    now = now or dt.datetime.now(dt.timezone.utc)
    project, job_cls = project_and_job(options.view_as(GoogleCloudOptions).project,
                                       m.emulator_host, m.job, m.shards, m.oversampling,
                                       m.job_module)
    if options.view_as(TestOptions).dry_run and job_cls.writes_back():
        # Beam's --dry_run (translate, don't submit) stays usable for a job that only reads.
        raise UsageError("--dry_run is Beam's (it stops a runner from submitting anything, "
                         "whatever its value): to see what a job that writes would change, "
                         "run it without --writes (a dry run is the default) or with "
                         "--writes=dry_run")
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
    # A local output is made absolute once, so every record of the run names its files alike
    # (``--output /`` stays the root, which the output checks refuse).
    output = (None if not m.output else m.output.rstrip("/") if "://" in m.output
              else os.path.abspath(m.output))
    run_id = uuid.uuid4().hex[:12]
    writes = job_cls.writes_back()
    # A writing run keeps everything of its own under OUTPUT/JOB/runs/RUN/ (never replaced).
    home = run_dir(output, job_cls.name, run_id) if output and writes else None
    place = (lambda name: f"{home}/{name}") if home else (
        lambda name: job_path(output, job_cls.name, name))
    dead_letter = m.dead_letter or (place(DEAD_LETTER_FILE) if output else None)
    if m.discard_records and m.bigquery_table:
        raise UsageError("--discard_records and --bigquery_table contradict each other: stream "
                         "the records, or discard them")
    if m.max_errors and not dead_letter:
        raise UsageError(f"--max_errors {m.max_errors} needs a place for the entities that fail: "
                         "pass --output (they go to OUTPUT/JOB/dead_letter.jsonl) or "
                         "--dead_letter=FILE")
    write = write_config(m, options, job_cls, rq, output, home, parse_read_time(m.read_time, now),
                         argv)
    return RunConfig(
        write=write,
        job=JobConfig(spec=job, name=job_cls.name, params=params, started=now,
                      command_line=command_line(argv), **config_fields(m, "job")),
        read=ReadConfig(
            target=DatastoreTarget(project=project, database=m.database,
                                   emulator_host=m.emulator_host),
            query=rq, read_time=parse_read_time(m.read_time, now), order=order,
            retry=RetryPolicy(deadline=m.datastore_deadline, rpc_timeout=m.datastore_call_timeout),
            read_time_option=m.read_time, **config_fields(m, "read")),
        output=OutputConfig(
            directory=output,
            summary_path=place(SUMMARY_FILE) if output else None,
            report_path=place(REPORT_FILE) if output else None,
            dead_letter=dead_letter, run_id=run_id, **config_fields(m, "output")))


def write_config(m, options: PipelineOptions, job_cls, rq, output: Optional[str],
                 home: Optional[str], read_time, argv: Sequence[str]) -> WriteConfig:
    """How the job writes back, checked: nothing is written unless asked, nothing without a
    way back unless the user says so."""
    name = job_cls.name
    if not job_cls.writes_back():
        if m.writes is not None:
            raise UsageError(f"--writes={m.writes}: job {name} does not write to Datastore (it "
                             "defines no migrate() and does not declare writes = True)")
        return WriteConfig()
    if job_cls.defines("migrate") and rq.keys_only:
        raise UsageError(f"job {name} defines migrate(), which changes whole entities: its "
                         "query must read them (Query(..., keys_only=False))")
    mode = m.writes or DRY_RUN
    if m.writes is None:
        log.warning("job %s writes to Datastore: this is a dry run, nothing will be written; "
                    "pass --writes=transactional (or blind) to write", name)
    if mode != DRY_RUN and m.undo_log and not output:
        raise UsageError(f"--writes={mode} writes to Datastore for real: its undo log (the way "
                         "back) needs --output; or pass --undo_log=false to write without one")
    if mode == BLIND and read_time is not None and job_cls.defines("migrate"):
        raise UsageError("--writes=blind with --read_time would write what migrate() made of "
                         "the snapshot over changes made since: use --writes=transactional "
                         "(it applies migrate() to the current version)")
    if getattr(m, "output_mode", "refuse") == "resume":
        raise UsageError(f"--output_mode=resume: job {name} writes to Datastore; run it again "
                         "instead (a migration is idempotent: what it already changed is left "
                         "as it is, and not written)")
    local = is_local(options.view_as(StandardOptions).runner)
    rampup = {"on": True, "off": False}.get(m.write_rampup,
                                            not local and not m.emulator_host)
    workers = m.write_workers_hint
    if workers is None:
        wo = options.view_as(WorkerOptions)
        workers = ((options.view_as(DirectOptions).direct_num_workers or 1) if local
                   else wo.max_num_workers or wo.num_workers or 1)
    undo_dir = f"{home}/{UNDO_DIR}" if home and mode != DRY_RUN and m.undo_log else None
    return WriteConfig(
        enabled=True, mode=mode, rampup=rampup, workers_hint=max(1, int(workers)),
        undo_dir=undo_dir, changes_path=f"{home}/{CHANGES_FILE}" if home else None,
        apply_command=apply_command(argv),
        restore_command=restore_command(argv, undo_dir) if undo_dir else "",
        **config_fields(m, "write"))


def command_line(argv: Sequence[str], program: Optional[str] = None) -> str:
    """The command line as run, for the report: ``datastore-mapper ARGS`` or ``python -m
    pipeline ARGS`` (``program``: ``sys.argv[0]``), each argument's secrets redacted as the
    logs redact them."""
    program = os.path.basename(sys.argv[0] if program is None and sys.argv else program or "")
    head = ["datastore-mapper"] if program == "datastore-mapper" else ["python", "-m", "pipeline"]
    return shlex.join([*head, *(redact(a) for a in argv)])


def _without(argv: Sequence[str], names: tuple) -> list:
    """``argv`` without the options ``names`` (``--name VALUE`` and ``--name=VALUE``)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in names:
            skip = True
            continue
        if a.split("=", 1)[0] in names and "=" in a:
            continue
        out.append(a)
    return out


def restore_command(argv: Sequence[str], undo_dir: str) -> str:
    """The command that puts back what this run changes: restore_entities over its undo log,
    against the same project, database, emulator and output (the job's own options dropped)."""
    kept = _without(argv, ("--job", "--params", "--writes", "--namespaces", "--output_mode",
                           "--job_module", "--changes_sample"))
    # the path as --params reads it back (a comma escaped), then the whole quoted for a shell
    return shlex.join([*cli_name().split(), "--job", "restore_entities", "--params",
                       f"from={quote_param(undo_dir)}", *kept, "--writes=transactional"])


def apply_command(argv: Sequence[str]) -> str:
    """The command line of a dry run with ``--writes=transactional``: what applies it."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--writes":
            skip = True
            continue
        if a.startswith("--writes="):
            continue
        out.append(a)
    return shlex.join([*cli_name().split(), *out, "--writes=transactional"])
