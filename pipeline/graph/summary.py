"""The last steps: the job's summary is built and logged (``BuildSummaryFn``), then the run is
finished (``FinishRunFn``): the dead letters composed into their file, ``summary.json`` written
with the run's status and ``report.html`` made from it, the lease released, and the run failed when more entities failed (or more
rows were rejected) than allowed, once all of that is written."""
from __future__ import annotations

import datetime as dt
import logging
from typing import Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.config import RunConfig
from pipeline.core import writes as w
from pipeline.core.erase import erase_failure
from pipeline.core.summary import (
    PRINTED_BY_THE_CLI,
    build_summary,
    format_summary,
    to_json_text,
)
from pipeline.errors import MapperError
from pipeline.sinks.bigquery.settings import BigQuerySettings
from pipeline.sinks.bigquery.stream import REJECTED_COUNTER
from pipeline.sinks.files import deadletters, lease
from pipeline.sinks.files.ownership import files_of_the_run
from pipeline.sinks.report.html import render_report

log = logging.getLogger(__name__)


class BuildSummaryFn(beam.DoFn):
    """{namespace: Totals} -> the summary (a dict), logged."""

    def __init__(self, run: RunConfig):
        self.run = run

    def process(self, per_namespace: dict):
        job, read = self.run.job, self.run.read
        summary = build_summary(
            job.name, read.query.describe(), dict(job.params), job.started,
            dt.datetime.now(dt.timezone.utc), per_namespace, job.max_counters, read.read_time)
        summary["run_id"] = self.run.output.run_id
        write = self.run.write
        if write.enabled:
            summary["writes"] = writes_section(write, summary["totals"]["counters"])
            summary["undo_log"] = write.undo_dir
        log.info("summary:\n%s", format_summary(summary), extra={PRINTED_BY_THE_CLI: True})
        yield summary


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

    def __init__(self, run: RunConfig, bigquery: Optional[BigQuerySettings] = None):
        self.run, self.bigquery = run, bigquery

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
        if out.summary_path:
            with FileSystems.create(out.summary_path) as f:
                f.write(to_json_text(summary).encode("utf-8"))
        if out.report_path:
            write_report(out.report_path, summary)
        if out.directory:
            lease.release(out.directory, job.name, out.run_id)
        if failure:
            raise MapperError(f"job {job.name}: {failure}")
        yield summary
