"""The resolved run: what the launcher hands to every step, grouped by who uses it.

Resolved once, at launch (``pipeline.launch.resolve``), and pickled with the graph, so every
worker sees the same job object, the same parameters, the same launch time and snapshot:

- ``JobConfig``: the job object, its name and parameters, the counter cap, the launch time
  (hooks, the reading step, the summary);
- ``ReadConfig``: what to read and how (the Datastore to talk to, the query, the snapshot, key
  order, splitting, slices): listing, sampling and reading depend on this alone;
- ``OutputConfig``: where the run's files go (``OUTPUT/JOB/...``, the summary);
- ``WriteConfig``: whether and how a job that writes back writes (``--writes``), its undo log.

- ``bigquery``: with --bigquery_table, the BigQuery sink's settings, resolved at launch (its
  schema made from a sample); the graph streams the records there instead of to files.

``pipeline.graph.build.build(p, run)`` takes nothing else.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any, Optional

from pipeline.api.job import JobSpec, Params
from pipeline.api.mutations import DRY_RUN
from pipeline.api.query import ResolvedQuery
from pipeline.core.keyorder import StringOrder
from pipeline.core.retry import RetryPolicy


@dataclasses.dataclass(frozen=True)
class DatastoreTarget:
    """Which Datastore: a project, a named database (None: the default one), an emulator."""

    project: str
    database: Optional[str] = None
    emulator_host: Optional[str] = None

    def describe(self) -> str:
        """For messages: which Datastore the run talks to."""
        if self.emulator_host:
            return f"the Datastore emulator at {self.emulator_host}"
        db = f", database {self.database}" if self.database else ""
        return f"Datastore (project {self.project}{db})"


@dataclasses.dataclass(frozen=True)
class JobConfig:
    """The job as it runs: the object (with what ``query()`` stored on it), its registered
    name, the run's parameters, the counter cap, the moment it was launched (UTC) and the
    command line that launched it."""

    spec: JobSpec
    name: str
    params: Params
    max_counters: int = 1000
    started: dt.datetime = dataclasses.field(
        default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    max_errors: int = 0  # entities the job may fail on before the run fails
    #: The command line as run, its secrets redacted: the report shows it, so the run can be
    #: repeated ("" when not launched from a command line).
    command_line: str = ""

    @property
    def metrics_namespace(self) -> str:
        """Beam metrics are reported under ``datastore_mapper.JOB``."""
        return f"datastore_mapper.{self.name}"


@dataclasses.dataclass(frozen=True)
class ReadConfig:
    """What to read and how: the Datastore and query, the snapshot (``read_time``, None for
    the latest data), the backend's key order, how namespaces are split (``shards`` ranges of
    ``oversampling`` samples each), how ranges are read (slices of ``slice_entities`` or
    ``slice_seconds``, narrow queries of about ``query_entities``), how transient errors are
    retried, and how often a reading worker logs its progress."""

    target: DatastoreTarget
    query: ResolvedQuery
    read_time: Optional[dt.datetime] = None
    order: StringOrder = StringOrder.UTF8
    shards: int = 8
    oversampling: int = 32
    slice_entities: int = 2000
    slice_seconds: float = 30.0
    query_entities: int = 1000
    retry: RetryPolicy = RetryPolicy()
    progress_seconds: float = 5.0
    read_time_option: Optional[str] = None  # --read_time as given ("start", a time, or None)
    reads_in_flight: int = 4


@dataclasses.dataclass(frozen=True)
class OutputConfig:
    """Where the run's files go: ``directory`` (``OUTPUT``, local or ``gs://``; None without
    --output), the summary's path, whether to compose ``OUTPUT/JOB/all.jsonl`` too, and the
    dead-letter file (``dead_letter``; None: nowhere, so the first failed entity fails the
    run). ``run_id`` names this run's temporary files and its lease on the output."""

    directory: Optional[str] = None
    summary_path: Optional[str] = None
    job_file: bool = False
    dead_letter: Optional[str] = None
    run_id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:12])
    #: Units a failed run completed (--output_mode=resume): not read again, their totals and
    #: outputs carried over (``pipeline.sinks.files.prepare.ResumedUnit``).
    resumed: tuple = ()
    #: The output is on a case-insensitive file system: names with capitals get a suffix there
    #: (``pipeline.core.units.path_part``).
    case_insensitive: bool = False
    #: --discard_records: the job's records are counted but written nowhere (the summary and
    #: the report still are, with --output).
    discard_records: bool = False
    #: The run report (``OUTPUT/JOB/report.html``; a local run without --output: beside its
    #: summary in the user's cache directory).
    report_path: Optional[str] = None
    #: A local run's progress channel: the private directory the workers append their
    #: progress events to (``pipeline.graph.progress``); None: no channel (remote runs).
    progress_dir: Optional[str] = None

    @property
    def dead_letter_parts(self) -> Optional[str]:
        """Where workers write dead letters while the run goes on: beside the final file,
        one file per slice, composed into it at the end."""
        if not self.dead_letter:
            return None
        parent, _, _ = self.dead_letter.rstrip("/").rpartition("/")
        return f"{parent}/.dead_letters-{self.run_id}"


@dataclasses.dataclass(frozen=True)
class WriteConfig:
    """How a job that writes back writes (``pipeline.graph.writer``): ``mode`` (--writes:
    dry_run, transactional or blind; ``enabled`` False for a job that does not write), the
    commit bounds, the rate (ramp-up, cap, over ``workers_hint`` workers), the undo log's
    directory (None: none, a dry run or --undo_log=false), how many before/after pairs per
    namespace go to ``changes.jsonl``, the command that applies a dry run."""

    enabled: bool = False
    mode: str = DRY_RUN
    batch: int = 500
    transaction_groups: int = 25
    max_rate: Optional[float] = None
    rampup: bool = False
    workers_hint: int = 1
    undo_dir: Optional[str] = None
    changes_path: Optional[str] = None
    changes_sample: int = 20
    contention_retries: int = 3
    apply_command: str = ""
    restore_command: str = ""  # what puts back what this run changes (its undo log)

    @property
    def dry_run(self) -> bool:
        return self.mode == DRY_RUN


@dataclasses.dataclass(frozen=True)
class RunConfig:
    job: JobConfig
    read: ReadConfig
    output: OutputConfig = OutputConfig()
    write: WriteConfig = WriteConfig()
    #: ``pipeline.sinks.bigquery.settings.BigQuerySettings`` (a sink's type: the config layer
    #: does not import it), or None: records go to files (with --output) or nowhere.
    bigquery: Optional[Any] = None
