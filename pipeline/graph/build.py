"""Building the pipeline: the mapper with the run's sink."""
from __future__ import annotations

from typing import Optional

import apache_beam as beam

from pipeline.config import RunConfig
from pipeline.graph.mapper import MapDatastore
from pipeline.sinks.bigquery.settings import BigQuerySettings
from pipeline.sinks.bigquery.stream import CheckRejectedFn, StreamToBigQuery
from pipeline.sinks.files.write import WriteOutput


def build(p: beam.Pipeline, run: RunConfig,
          bigquery: Optional[BigQuerySettings] = None) -> dict:
    """Add the mapper to a pipeline; returns its {'records', 'summary', 'files'} PCollections.

    With ``bigquery`` (--bigquery_table) the records are streamed into BigQuery (see
    ``pipeline.sinks.bigquery.stream``); ``namespace_completed`` runs once its rows are all
    sent, and the run fails at the end when more rows were rejected than allowed. Otherwise,
    with --output, the records go to ``OUTPUT/JOB/namespaces/NAMESPACE.jsonl`` (see
    ``pipeline.sinks.files``), and ``namespace_completed`` runs once its file is complete.
    """
    if bigquery is not None:
        stream = StreamToBigQuery(bigquery, run.job, run.read.target.project)
        out = p | "Mapper" >> MapDatastore(run, stream, record_id=StreamToBigQuery.record_id)
        out["summary"] = out["summary"] | "CheckRejected" >> beam.ParDo(
            CheckRejectedFn(bigquery), beam.pvalue.AsList(stream.dead_letters))
        return out
    write = WriteOutput(run.job, run.output) if run.output.directory else None
    return p | "Mapper" >> MapDatastore(run, write)
