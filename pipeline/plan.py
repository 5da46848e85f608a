"""The run's plan: everything workers need, resolved once when the pipeline is built."""
from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Optional

from pipeline.job import JobSpec, Params
from pipeline.keyorder import StringOrder
from pipeline.query import ResolvedQuery
from pipeline.sinks.bigquery import BigQuerySettings


@dataclasses.dataclass(frozen=True)
class RunPlan:
    job: JobSpec
    job_name: str
    params: Params
    query: ResolvedQuery
    project: str
    database: Optional[str] = None
    emulator_host: Optional[str] = None
    read_time: Optional[dt.datetime] = None
    order: StringOrder = StringOrder.UTF8
    shards: int = 8
    oversampling: int = 32
    slice_entities: int = 2000
    slice_seconds: float = 30.0
    query_entities: int = 1000
    max_counters: int = 1000
    progress_seconds: float = 5.0
    started: dt.datetime = dataclasses.field(
        default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    output: Optional[str] = None
    summary_path: Optional[str] = None
    job_file: bool = False
    bigquery: Optional["BigQuerySettings"] = None  # --bigquery_table: stream records there

    @property
    def metrics_namespace(self) -> str:
        return f"datastore_mapper.{self.job_name}"
