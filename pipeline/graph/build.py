"""Building the pipeline: the mapper with the run's sink."""
from __future__ import annotations

import apache_beam as beam

from pipeline.config import RunConfig
from pipeline.graph.mapper import MapDatastore
from pipeline.graph.read import Records
from pipeline.graph.restore import RestoreFromUndoLog
from pipeline.graph.summary import FinishRunFn
from pipeline.sinks.bigquery.stream import StreamToBigQuery
from pipeline.sinks.files.write import WriteOutput


def build(p: beam.Pipeline, run: RunConfig) -> dict:
    """Add the mapper to a pipeline; returns its {'records', 'summary', 'files'} PCollections
    (the summary once the run is finished: dead letters composed, summary.json written).

    With ``run.bigquery`` (--bigquery_table) the records are streamed into BigQuery (see
    ``pipeline.sinks.bigquery.stream``); ``namespace_completed`` runs once its rows are all
    sent, and the run fails at the end when more rows were rejected than allowed. Otherwise,
    with --output, the records go to ``OUTPUT/JOB/namespaces/NAMESPACE.jsonl`` (see
    ``pipeline.sinks.files``), and ``namespace_completed`` runs once its file is complete.
    """
    if run.job.spec.reads_undo_log:  # restore_entities: the undo log drives it, no query
        out = p | "Restore" >> RestoreFromUndoLog(run, run.job.spec.undo_location)
        waits = ([beam.pvalue.AsList(out["changes"])] if out["changes"] is not None else [])
        out["summary"] = out["summary"] | "Finish" >> beam.ParDo(FinishRunFn(run), *waits)
        return out
    bigquery = run.bigquery
    if bigquery is not None:
        stream = StreamToBigQuery(bigquery, run.job, run.read.target.project,
                                  run.output.dead_letter_parts)
        out = p | "Mapper" >> MapDatastore(run, stream, Records(
            encode=stream.encode, record_id=StreamToBigQuery.record_id))
        out["summary"] = out["summary"] | "Finish" >> beam.ParDo(
            FinishRunFn(run), beam.pvalue.AsList(stream.dead_letters))
        return out
    keep = run.output.directory and not run.output.discard_records
    write = WriteOutput(run.job, run.output, run.read.query.per_kind) if keep else None
    no_sink = not run.output.directory and not run.output.discard_records
    out = p | "Mapper" >> MapDatastore(run, write, Records(
        encode=write.encode if write else None, no_sink=no_sink))
    waits = ([beam.pvalue.AsList(out["changes"])] if out.get("changes") is not None else [])
    out["summary"] = out["summary"] | "Finish" >> beam.ParDo(FinishRunFn(run), *waits)
    return out
