"""The last steps: the job's summary is built and logged (``BuildSummaryFn``), then the run is
finished (``FinishRunFn``): the dead letters composed into their file, ``summary.json`` written
with the run's status and ``report.html`` made from it, the lease released, and the run failed when more entities failed (or more
rows were rejected) than allowed, once all of that is written."""
from __future__ import annotations

import datetime as dt
import logging
import platform
from importlib import metadata
from typing import Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.config import ReadConfig, RunConfig
from pipeline.core import writes as w
from pipeline.core.erase import erase_failure
from pipeline.core.namespaces import namespace_label
from pipeline.core.summary import (
    PRINTED_BY_THE_CLI,
    build_summary,
    format_summary,
    json_pieces,
)
from pipeline.errors import MapperError
from pipeline.sinks.bigquery.settings import BigQuerySettings
from pipeline.sinks.bigquery.stream import REJECTED_COUNTER
from pipeline.sinks.files import deadletters, lease
from pipeline.sinks.files.layout import RUNS_DIR, job_dir, relative
from pipeline.sinks.files.ownership import files_of_the_run
from pipeline.sinks.report.html import render_report

log = logging.getLogger(__name__)


class BuildSummaryFn(beam.DoFn):
    """{namespace: Totals} -> the summary (a dict), logged."""

    def __init__(self, run: RunConfig):
        self.run = run

    def process(self, per_namespace: dict):
        job, read = self.run.job, self.run.read
        # restore_entities queries nothing: the files it puts back are what it reads
        what = (f"the undo log or backup at {job.spec.undo_location}"
                if job.spec.reads_undo_log else read.query.describe())
        summary = build_summary(
            job.name, what, dict(job.params), job.started,
            dt.datetime.now(dt.timezone.utc), per_namespace, job.max_counters, read.read_time)
        summary["run_id"] = self.run.output.run_id
        summary["target"] = target(read)
        summary["command_line"] = job.command_line or None
        summary["versions"] = versions()
        write = self.run.write
        if write.enabled:
            summary["writes"] = writes_section(write, summary["totals"]["counters"])
            summary["undo_log"] = write.undo_dir
        log.info("summary:\n%s", format_summary(summary), extra={PRINTED_BY_THE_CLI: True})
        yield summary


def target(read: ReadConfig) -> dict:
    """Which Datastore the run read: project, database (None: the default one), emulator
    (None: the service) and the namespaces asked for (None: every namespace)."""
    t, names = read.target, read.query.namespaces
    return {"project": t.project, "database": t.database, "emulator_host": t.emulator_host,
            "namespaces": None if names is None else [namespace_label(n) for n in names]}


def versions() -> dict:
    """The versions that ran the summary step: this tool's, Beam's and Python's ("unknown"
    for a package installed without its metadata)."""
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"
    return {"datastore-mapper": version("datastore-mapper"),
            "apache-beam": version("apache-beam"), "python": platform.python_version()}


def file_sizes(output: str, job_name: str, names: list, run_id: str = "") -> dict:
    """{name: bytes} of the run's files that exist now, relative to OUTPUT/JOB: ``names``
    (its record, ``files``) and what is under its own ``runs/RUN/`` (a writing run's undo
    log and changes, which no later run replaces, so ``files`` leaves them out). summary.json
    and report.html are written after this."""
    where = job_dir(output, job_name)
    try:
        found = FileSystems.match([where.rstrip("/") + "/**"])[0].metadata_list
    except Exception:  # nothing there (Beam may raise for a pattern matching nothing)
        return {}
    sizes = {relative(m.path, where): m.size_in_bytes for m in found}
    own = f"{RUNS_DIR}/{run_id}/" if run_id else None
    wanted = set(names)
    return {n: sizes[n] for n in sorted(sizes)
            if n in wanted or (own is not None and n.startswith(own))}


def writes_section(write, counters: dict) -> dict:
    """What a writing run did (or, dry, would do): its mode, counts, and where to look."""
    return {"mode": write.mode,
            "counts": {name.split(".", 1)[1]: counters.get(name, 0) for name in w.COUNTERS},
            "undo_log": write.undo_dir, "changes": write.changes_path,
            "apply": write.apply_command if write.dry_run else None,
            "restore": write.restore_command or None}


def run_failure(summary: dict, max_errors: int, bigquery: Optional[BigQuerySettings],
                dead_letter: Optional[str]) -> Optional[str]:
    """Why a run that read everything failed after all, or None: more entities failed than
    --max_errors, a tenant erase left entities behind (``pipeline.graph.erase``), or BigQuery
    rejected more rows than --bigquery_max_bad_rows."""
    totals = summary.get("totals", {})
    where = f"; the entities and the errors are in {dead_letter}" if dead_letter else ""
    errors = totals.get("errors", 0)
    if errors > max_errors:
        return (f"{errors} entities failed, more than --max_errors={max_errors}{where}")
    left = erase_failure(summary.get("erase"))
    if left:
        return left
    rejected = totals.get("counters", {}).get(REJECTED_COUNTER, 0)
    if bigquery is not None and rejected > bigquery.max_bad_rows:
        return (f"BigQuery rejected {rejected} row(s), more than --bigquery_max_bad_rows="
                f"{bigquery.max_bad_rows}; the rows and BigQuery's errors are in "
                f"{bigquery.dead_letter}")
    return None


def report_view(summary: dict, summary_name: Optional[str], summary_bytes: int,
                report_name: Optional[str]) -> dict:
    """The summary as the report shows it: its files with summary.json (its size known once
    written) and report.html, a writing run's too (``files`` leaves ``runs/RUN/`` out);
    names relative to OUTPUT/JOB, None: not written."""
    if "file_bytes" not in summary:
        return summary
    sizes = dict(summary["file_bytes"])
    if summary_name:
        sizes[summary_name] = summary_bytes
    names = [*summary.get("files", []), *sizes, *([report_name] if report_name else [])]
    return {**summary, "files": list(dict.fromkeys(names)), "file_bytes": sizes}


def _below(path: Optional[str], top: Optional[str]) -> Optional[str]:
    """``path`` relative to ``top`` (OUTPUT/JOB), or None when not below it."""
    if not path or not top or not path.startswith(top.rstrip("/") + "/"):
        return None
    return relative(path, top)


def write_report(path: str, summary: dict) -> None:
    """report.html beside summary.json (a report that cannot be made is logged, never the
    end of a run that read everything)."""
    try:
        text = render_report(summary)
        with FileSystems.create(path, mime_type="text/html") as f:
            f.write(text.encode("utf-8"))
    except Exception as e:
        log.warning("could not write the run report %s: %s: %s", path, type(e).__name__, e)


class FinishRunFn(beam.DoFn):
    """summary -> the summary as written: dead letters composed (``side``: the sinks' own
    dead-letter files, waited for), ``summary.json`` with its status, the lease released;
    then the run fails if it must."""

    def __init__(self, run: RunConfig):
        self.run, self.bigquery = run, run.bigquery

    def process(self, summary: dict, _written=()):
        out, job = self.run.output, self.run.job
        if out.dead_letter_parts:
            n = deadletters.compose(out.dead_letter_parts, out.dead_letter)
            summary["dead_letters"] = {"count": n, "file": out.dead_letter if n else None}
        failure = run_failure(summary, job.max_errors, self.bigquery, out.dead_letter)
        summary["status"] = "failed" if failure else "succeeded"
        if failure:
            summary["failure"] = failure
        if out.directory:
            summary["files"] = files_of_the_run(out.directory, job.name,
                                                (out.summary_path, out.report_path))
            summary["file_bytes"] = file_sizes(out.directory, job.name, summary["files"],
                                               out.run_id)
        size = 0
        if out.summary_path:  # written as it is encoded: never whole in memory
            with FileSystems.create(out.summary_path) as f:
                for piece in json_pieces(summary):
                    f.write(piece)
                    size += len(piece)
        if out.report_path:
            top = job_dir(out.directory, job.name) if out.directory else None
            write_report(out.report_path, report_view(
                summary, _below(out.summary_path, top), size, _below(out.report_path, top)))
        if out.directory:
            lease.release(out.directory, job.name, out.run_id)
        if failure:
            raise MapperError(f"job {job.name}: {failure}")
        yield summary
