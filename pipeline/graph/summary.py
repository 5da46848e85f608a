"""The last step: the job's summary, built, logged and written as ``summary.json`` by the
pipeline itself (so it exists on Dataflow too)."""
from __future__ import annotations

import datetime as dt
import logging

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.config import RunConfig
from pipeline.core.summary import build_summary, format_summary, to_json_text

log = logging.getLogger(__name__)


class WriteSummaryFn(beam.DoFn):
    """{namespace: Totals} -> the summary (a dict), logged, and written when asked."""

    def __init__(self, run: RunConfig):
        self.run = run

    def process(self, per_namespace: dict):
        job, read, output = self.run.job, self.run.read, self.run.output
        summary = build_summary(
            job.name, read.query.describe(), dict(job.params), job.started,
            dt.datetime.now(dt.timezone.utc), per_namespace, job.max_counters, read.read_time)
        log.info("summary:\n%s", format_summary(summary))
        if output.summary_path:
            with FileSystems.create(output.summary_path) as f:
                f.write(to_json_text(summary).encode("utf-8"))
        yield summary
