"""The streaming sink: a job's records into BigQuery (``--bigquery_table``), with our own
insert ids.

Beam's ``WriteToBigQuery`` makes its own insert ids and creates tables through a client that
cannot be pointed at an emulator, so this is a DoFn over google-cloud-bigquery's
``insert_rows_json``:

- each record carries an insert id derived from its entity's key and its index among the
  records ``next`` yielded for that entity (``ReadRangeFn`` attaches it, ``insert_id`` makes
  it), so a retried bundle sends the same ids;
- rows are batched per table within the API's row and byte limits; a request is retried with
  backoff up to a deadline on transient errors, and rows rejected as transient are re-sent;
- rows BigQuery rejects go, with its errors, to the run's dead-letter file and are counted
  (``bigquery_rejected``); the run fails at its end, once that file is written, when there are
  more than ``--bigquery_max_bad_rows`` (``pipeline.graph.summary.FinishRunFn``);
- datasets and tables are created with the same client (``--bigquery_create``).

Everything that can be checked is checked at launch, with a short deadline (see
``pipeline.sinks.bigquery.prepare``), so a wrong table or an unreachable BigQuery fails before
any read.
"""
from __future__ import annotations

import json
import logging
import time
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows
from google.api_core import exceptions as gexc
from google.api_core.retry import exponential_sleep_generator

from pipeline.config import JobConfig
from pipeline.core import deadletters
from pipeline.core.records import RecordError
from pipeline.core.totals import NamespaceOutput
from pipeline.errors import JobFailed, MapperError
from pipeline.core.export_format import UNMAPPED_COUNTER, encode_fitting
from pipeline.sinks.bigquery.service import client, ensure_table, retry
from pipeline.sinks.bigquery.settings import BigQuerySettings
from pipeline.sinks.bigquery.streaming_rows import (
    MAX_ROW_BYTES,
    batches,
    insert_id,
    is_transient,
    json_ready,
    row_bytes,
)
from pipeline.sinks.bigquery.tables import TableSpec, parse_table
from pipeline.sinks.inputs import labelled_parts

log = logging.getLogger(__name__)

DEAD = "dead"
ROWS_COUNTER = "bigquery_rows"
REJECTED_COUNTER = "bigquery_rejected"


class InsertRowsFn(beam.DoFn):
    """(Unit, (insert id, record)) -> per-bundle counts ((namespace, kind), {table: [rows,
    rejected, unmapped]}) as the main output, and rejected rows with BigQuery's errors on the
    ``dead`` output. Each unit's rows go to its table (``{namespace}`` and ``{kind}`` filled)."""

    def __init__(self, settings: BigQuerySettings, job: JobConfig, project: str):
        self.settings, self.job, self.project = settings, job, project

    def setup(self):
        self._client = client(self.project, self.settings.emulator_host)
        self._spec_of: dict = {}  # table name -> TableSpec, for the tables checked or created
        self._tables: dict = {}  # (namespace, kind, the job's choice) -> (TableSpec, name)
        spec = self.job.spec
        self._pick = spec.bigquery_table if spec.defines("bigquery_table") else None
        metrics = self.job.metrics_namespace
        self._rows_metric = Metrics.counter(metrics, ROWS_COUNTER)
        self._rejected_metric = Metrics.counter(metrics, REJECTED_COUNTER)
        self._unmapped_metric = Metrics.counter(metrics, UNMAPPED_COUNTER)

    def start_bundle(self):
        self._buffers: dict = {}  # table -> [(size, (id, row, (namespace, kind)))]
        self._sizes: dict = {}
        self._counts: dict = {}  # ((namespace, kind), table) -> [rows, rejected, unmapped]

    def process(self, element):
        unit, (row_id, record) = element
        where = (unit.namespace, unit.kind)
        spec, key = self._table_for(unit.namespace, unit.kind, record)
        row, unmapped = self._row(unit.kind, record)
        if unmapped:
            self._count(where, key, 0, 0, unmapped)
        size = row_bytes(row_id, row)
        if size > MAX_ROW_BYTES:
            yield from self._dead([(row_id, row, where)], key, [[{
                "reason": "tooLarge", "message": f"row of about {size} bytes; BigQuery streaming "
                f"accepts rows up to 10 MB"}]])
            return
        buf = self._buffers.setdefault(key, [])
        buf.append((size, (row_id, row, where)))
        self._sizes[key] = self._sizes.get(key, 0) + size
        if len(buf) >= self.settings.batch_rows or self._sizes[key] >= self.settings.batch_bytes:
            yield from self._flush(spec)

    def finish_bundle(self):
        for key in list(self._buffers):
            for out in self._flush(self._spec_of[key]):
                yield _windowed(out)
        for (where, table), counts in self._counts.items():
            yield GlobalWindows.windowed_value((where, {table: counts}))

    # --- helpers ---

    def _table_for(self, namespace: str, kind: str, record) -> tuple:
        """(table, its name): resolved, and checked or created, once per unit and choice."""
        chosen = self._pick(namespace, record) if self._pick is not None else None
        found = self._tables.get((namespace, kind, chosen))
        if found is not None:
            return found
        spec = (_resolve_choice(chosen, self.settings.table, namespace, kind)
                if chosen is not None else self.settings.table.for_unit(namespace, kind))
        key = str(spec)
        if key not in self._spec_of:
            ensure_table(self._client, self.settings, spec, self.settings.retry.deadline,
                         self.settings.schema_for(kind))
            self._spec_of[key] = spec
        found = self._tables[(namespace, kind, chosen)] = (spec, key)
        return found

    def _row(self, kind: str, record) -> tuple:
        if self.settings.columns is not None:  # typed rows of the export conversion
            row, unmapped = encode_fitting(record, self.settings.columns_for(kind))
            if unmapped:
                self._unmapped_metric.inc(unmapped)
            return row, unmapped
        return record, 0  # made ready by streamable_row, in the reading step

    def _count(self, where: tuple, table: str, rows: int, rejected: int,
               unmapped: int = 0) -> None:
        c = self._counts.setdefault((where, table), [0, 0, 0])
        c[0] += rows
        c[1] += rejected
        c[2] += unmapped

    def _flush(self, spec: TableSpec):
        key = str(spec)
        items = self._buffers.pop(key, [])
        self._sizes.pop(key, None)
        for batch in batches(items, self.settings.batch_rows, self.settings.batch_bytes):
            yield from self._insert(spec, batch)

    def _insert(self, spec: TableSpec, batch: list):
        policy = self.settings.retry
        pending = batch
        deadline = time.monotonic() + policy.deadline
        sleeps = exponential_sleep_generator(policy.initial, policy.maximum, policy.multiplier)
        while pending:
            left = max(5.0, deadline - time.monotonic())
            try:
                errors = self._client.insert_rows_json(
                    str(spec), [row for _, row, _ in pending],
                    row_ids=[rid for rid, _, _ in pending], skip_invalid_rows=True,
                    retry=retry(policy, left), timeout=min(60.0, left))
            except gexc.GoogleAPICallError as e:
                if getattr(e, "code", None) == 404:
                    raise MapperError(f"BigQuery table {spec} is gone (deleted during the run?): "
                                      f"{e.message}") from None
                if isinstance(e, gexc.BadRequest):
                    # The whole request was refused, not one row: send the rows one by one, so
                    # the bad ones reach the dead letters with this error.
                    if len(pending) > 1:
                        for one in pending:
                            yield from self._insert(spec, [one])
                        return
                    yield from self._dead(pending, str(spec), [[{
                        "reason": "invalid", "message": str(e.message or e)}]])
                    return
                raise MapperError(f"streaming to {self.settings.where} table {spec} failed "
                                  f"(transient errors are retried for {policy.deadline:.0f} s): "
                                  f"{type(e).__name__}: {e}") from None
            except Exception as e:  # connection errors outlive the client's retry deadline
                raise MapperError(f"streaming to {self.settings.where} table {spec} failed: "
                                  f"{type(e).__name__}: {e}") from None
            by_index = {int(e["index"]): e.get("errors", []) for e in errors or ()}
            retry_rows, bad, bad_errors = [], [], []
            for i, item in enumerate(pending):
                errs = by_index.get(i)
                if errs is None:
                    self._count(item[2], str(spec), 1, 0)
                    self._rows_metric.inc()
                elif is_transient(errs) and time.monotonic() < deadline:
                    retry_rows.append(item)
                else:
                    bad.append(item)
                    bad_errors.append(errs)
            if bad:
                yield from self._dead(bad, str(spec), bad_errors)
            pending = retry_rows
            if pending:
                time.sleep(next(sleeps))

    def _dead(self, items: list, table: str, errors: list):
        for (row_id, row, where), errs in zip(items, errors):
            self._count(where, table, 0, 1)
            self._rejected_metric.inc()
            yield beam.pvalue.TaggedOutput(DEAD, deadletters.bigquery_rejection(
                self.job.name, where[0], table, row_id, errs, row, kind=where[1]))


def _windowed(out):
    if isinstance(out, beam.pvalue.TaggedOutput):
        return beam.pvalue.TaggedOutput(out.tag, GlobalWindows.windowed_value(out.value))
    return GlobalWindows.windowed_value(out)


def _resolve_choice(chosen: Any, default: TableSpec, namespace: str, kind: str) -> TableSpec:
    """A job's ``bigquery_table(namespace, record)`` answer: a TableSpec, ``TABLE`` (in the
    default dataset) or ``DATASET.TABLE`` / ``PROJECT.DATASET.TABLE`` / ``PROJECT:DATASET.TABLE``;
    ``{namespace}`` and ``{kind}`` in it are filled."""
    if isinstance(chosen, TableSpec):
        return chosen.for_unit(namespace, kind)
    text = str(chosen)
    if "." not in text and ":" not in text:
        text = f"{default.dataset}.{text}"
    try:
        return parse_table(text, default.project).for_unit(namespace, kind)
    except ValueError as e:
        raise JobFailed(f"bigquery_table() returned {chosen!r}: {e}") from None


def _sum_counts(dicts):
    out: dict = {}
    for d in dicts:
        for table, counts in d.items():
            c = out.setdefault(table, [0, 0, 0])
            for i, n in enumerate(counts):
                c[i] += n
    return out


def streamed_output(tables: dict) -> NamespaceOutput:
    """What a unit's rows did (table -> [rows, rejected, unmapped properties]): the tables its
    namespace's ``namespace_completed`` gets as ``output``, and the counters added to its
    totals."""
    counters = {ROWS_COUNTER: sum(c[0] for c in tables.values()),
                REJECTED_COUNTER: sum(c[1] for c in tables.values())}
    unmapped = sum(c[2] for c in tables.values())
    if unmapped:
        counters[UNMAPPED_COUNTER] = unmapped
    return NamespaceOutput(", ".join(sorted(tables)), counters)


def streamable_row(record: Any) -> dict:
    """A job's record -> the row insertAll is sent (``json_ready``), checked in the reading step:
    a record that is not a dict of column -> value, or that JSON cannot hold (circular, too
    deep), is its entity's dead letter, never a failed bundle."""
    if not isinstance(record, dict):
        raise RecordError(f"streaming to BigQuery needs each record to be a dict of column -> "
                          f"value, not a {type(record).__name__}")
    try:
        row = json_ready(record)
        json.dumps(row, allow_nan=False)
    except RecursionError:
        raise RecordError("the record is nested too deeply (circular?) to be streamed") from None
    except (TypeError, ValueError) as e:
        raise RecordError(f"the record cannot be sent as JSON: {e}") from None
    return row


class StreamToBigQuery(beam.PTransform):
    """(records, units) -> ((namespace, kind), NamespaceOutput), once that unit's rows are
    all sent; rejected rows are written as dead letters into ``parts`` (the run's dead-letter
    parts, composed at the end; ``dead_letters`` attribute: the PCollection of written file
    names, for a step that must wait for it).

    The records arrive as (Unit, (insert id, row)): build the mapper with
    ``record_id=StreamToBigQuery.record_id`` and ``encode=stream.encode``."""

    record_id = staticmethod(insert_id)

    def __init__(self, settings: BigQuerySettings, job: JobConfig, project: str, parts: str):
        super().__init__()
        self.settings, self.job, self.project, self.parts = settings, job, project, parts
        self.dead_letters = None

    @property
    def encode(self):
        """Each record as the row it is sent as (typed rows are fitted to the columns later)."""
        return streamable_row if self.settings.columns is None else None

    def expand(self, pvalue):
        records, units = pvalue
        s = self.settings
        inserted = [  # each part's rows sent where they are made (see pipeline.sinks.inputs)
            part | f"InsertRows{n}" >> beam.ParDo(
                InsertRowsFn(s, self.job, self.project)).with_outputs(DEAD, main="counts")
            for n, part in labelled_parts(records)]
        self.dead_letters = (
            tuple(x[DEAD] for x in inserted)
            | "AllRejected" >> beam.Flatten()
            | "DeadLetterJson" >> beam.Map(lambda d: json.dumps(d, ensure_ascii=False,
                                                                sort_keys=True))
            | "WriteDeadLetters" >> beam.io.WriteToText(
                f"{self.parts}/bigquery-rejected", file_name_suffix=".jsonl"))
        empty = units | "NoRowsYet" >> beam.Map(lambda u: ((u.namespace, u.kind), {}))
        return (
            (*(x.counts for x in inserted), empty)
            | "AllCounts" >> beam.Flatten()
            | "CountsPerUnit" >> beam.CombinePerKey(_sum_counts)
            | "Streamed" >> beam.MapTuple(lambda key, tables: (key, streamed_output(tables))))
