"""Building and running the pipeline."""
from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.plan import RunPlan
from pipeline.transforms import MapDatastore


def record_json(record: Any) -> str:
    """Records as JSON lines (interim encoding; the file output issue owns the format)."""

    def default(v: Any):
        if isinstance(v, dt.datetime):
            return v.isoformat()
        if isinstance(v, (bytes, bytearray)):
            return base64.b64encode(bytes(v)).decode("ascii")
        if hasattr(v, "flat_path"):
            return list(v.flat_path)
        if isinstance(v, (set, frozenset)):
            return sorted(v)
        if isinstance(v, dict) or hasattr(v, "items"):
            return dict(v.items())
        return repr(v)

    return json.dumps(record, default=default, ensure_ascii=False, sort_keys=True)


def build(p: beam.Pipeline, plan: RunPlan) -> dict:
    """Add the mapper to a pipeline; returns its {'records', 'summary'} PCollections."""
    out = p | "Mapper" >> MapDatastore(plan)
    if plan.output:
        prefix = FileSystems.join(plan.output, plan.job_name, "records")
        (out["records"]
         | "RecordJson" >> beam.Map(lambda kv: record_json(kv[1]))
         | "WriteRecords" >> beam.io.WriteToText(prefix, file_name_suffix=".jsonl"))
    return out
