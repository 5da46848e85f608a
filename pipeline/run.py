"""Building and running the pipeline."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.plan import RunPlan
from pipeline.sinks.bigquery import CheckRejectedFn, StreamToBigQuery
from pipeline.sinks.files import DEFAULT_SUFFIX, WriteNamespaceFiles, job_dir, record_json
from pipeline.transforms import MapDatastore

__all__ = ["build", "record_json", "WriteOutput"]


class _WriteSchemaFn(beam.DoFn):
    def __init__(self, path: str, export):
        self.path, self.export = path, export

    def process(self, _files, result):
        with FileSystems.create(self.path) as f:
            f.write(self.export.schema_text(result).encode("utf-8"))
        yield self.path


class WriteOutput(beam.PTransform):
    """(records, namespaces) -> (namespace, final path): the job's records as files.

    A job's ``encode(record) -> str`` (one line) and ``file_suffix`` choose the format (default:
    JSON lines, ``.jsonl``). A job with a ``bigquery`` attribute (a
    ``pipeline.sinks.bigquery_json.BigQueryExport``) yields typed rows: their schema is merged
    first (a CombineFn), each row is then encoded as that schema says, and the schema is written
    to ``OUTPUT/JOB/schema.json`` once every namespace file is composed.
    """

    def __init__(self, plan: RunPlan):
        super().__init__()
        self.plan = plan

    def expand(self, pvalue):
        records, namespaces = pvalue
        plan, job = self.plan, self.plan.job
        suffix = getattr(job, "file_suffix", None) or DEFAULT_SUFFIX
        export = getattr(job, "bigquery", None)
        if export is None:
            encoder = getattr(job, "encode", None) or record_json
            return (records, namespaces) | "NamespaceFiles" >> WriteNamespaceFiles(
                plan.output, plan.job_name, encoder, suffix=suffix, job_file=plan.job_file)
        schema = (records
                  | "Rows" >> beam.Values()
                  | "MergeSchema" >> beam.CombineGlobally(export.combine_fn()))
        lines = records | "EncodeRows" >> beam.Map(
            lambda kv, result: (kv[0], export.encode(kv[1], result)),
            result=beam.pvalue.AsSingleton(schema))
        files = (lines, namespaces) | "NamespaceFiles" >> WriteNamespaceFiles(
            plan.output, plan.job_name, str, suffix=suffix, job_file=plan.job_file)
        path = FileSystems.join(job_dir(plan.output, plan.job_name), export.schema_file)
        (files
         | "AllFiles" >> beam.combiners.ToList()
         | "WriteSchema" >> beam.ParDo(_WriteSchemaFn(path, export),
                                       result=beam.pvalue.AsSingleton(schema)))
        return files


def build(p: beam.Pipeline, plan: RunPlan) -> dict:
    """Add the mapper to a pipeline; returns its {'records', 'summary', 'files'} PCollections.

    With ``--bigquery_table`` the records are streamed into BigQuery (see
    ``pipeline.sinks.bigquery``); ``namespace_completed`` runs once its rows are all sent, and
    the run fails at the end when more rows were rejected than allowed. Otherwise, with
    ``--output``, the records go to ``OUTPUT/JOB/namespaces/NAMESPACE.jsonl`` (see
    ``pipeline.sinks.files``), and ``namespace_completed`` runs once its file is complete.
    """
    if plan.bigquery is not None:
        stream = StreamToBigQuery(plan)
        out = p | "Mapper" >> MapDatastore(plan, stream)
        out["summary"] = out["summary"] | "CheckRejected" >> beam.ParDo(
            CheckRejectedFn(plan.bigquery), beam.pvalue.AsList(stream.dead_letters))
        return out
    write = WriteOutput(plan) if plan.output else None
    return p | "Mapper" >> MapDatastore(plan, write)
