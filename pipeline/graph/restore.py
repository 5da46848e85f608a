"""Putting a run's undo log back (``restore_entities --params from=OUTPUT/JOB/runs/RUN/undo``).

Driven by the undo log, not by a query (a deleted entity is found by no query): each undo file
is one batch of one namespace. For each record, in a transaction per batch of entity groups,
the entity's current version is looked up and compared with what the run wrote:

- still what the run wrote (its ``after_sha256``): put ``before`` back (delete it when the run
  had created it: ``before`` null);
- already as it was before (``before``): nothing to do (counted unchanged);
- anything else: it was changed again since: not overwritten, reported (a line of the dead-
  letter file, source ``restore``, counted ``writes.changed_since``).

A restore is a writing run like any other: a dry run unless ``--writes`` says otherwise, with
its own undo log (a restore can be undone) and ``changes.jsonl``; it writes through the job
writer's path (``writeback``): a batch that keeps meeting contention is retried, then halved;
an entity that still conflicts fails the restore (it is not a dead letter to forget).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
from typing import Any, Callable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.config import RunConfig
from pipeline.core import deadletters
from pipeline.core import writes as w
from pipeline.core.counters import merge_counters
from pipeline.core.keyorder import format_path, path_from_flat
from pipeline.core.namespaces import namespace_label
from pipeline.core.totals import Totals
from pipeline.core.writes import Contention, Op
from pipeline.datastore import entity_json as ej
from pipeline.datastore.client import client
from pipeline.datastore.writes import bind_key, lookup
from pipeline.errors import MapperError
from pipeline.graph.changes import WriteChanges
from pipeline.graph.lifecycle import JobCompletedFn, JobStartedFn
from pipeline.graph.read import CHANGES
from pipeline.graph.rollup import JobSummaryFn, TotalsFn
from pipeline.graph.summary import BuildSummaryFn
from pipeline.graph.writeback import UndoLog, tally, transact_ops
from pipeline.sinks.files import undo
from pipeline.sinks.files.deadletters import write_part

log = logging.getLogger(__name__)


def _dedupe(records: list) -> list:
    """A commit retried after an unknown outcome may have left two records of one change."""
    seen, out = set(), []
    for r in records:
        ident = (repr(sorted(r["key"].items())), repr(r.get("before")), r.get("after_sha256"))
        if ident not in seen:
            seen.add(ident)
            out.append(r)
    return out


BACKUP = "backup"  # the mode of backup_entities' records (restored where absent)
CHUNK = 2_000  # records of an undo or backup file restored at a time


def _chunks(items, n: int):
    chunk: list = []
    for item in items:
        chunk.append(item)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclasses.dataclass
class Decision:
    op: Any  # an Op to write, or None
    outcome: str  # restore | unchanged | changed_since


def decide(record: dict, current: Any, key: Any = None) -> Decision:
    """What restoring ``record`` means, given the entity's current version (None: absent);
    ``key``: the record's key as the restoring run writes it (its project and database)."""
    before = ej.entity_from_json(record["before"]) if record.get("before") else None
    now = undo.digest(ej.fingerprint(current))
    if now == record.get("after_sha256"):
        key = key if key is not None else ej.key_from_json(record["key"])
        if before is not None:
            before.key = key  # the key the run wrote (its project and database)
        return Decision(Op(key, current, before), "restore")
    if ej.same(current, before):
        return Decision(None, "unchanged")
    return Decision(None, "changed_since")


class RestoreFileFn(beam.DoFn):
    """An undo file -> (namespace, Totals) of its restore, samples on ``changes``."""

    def __init__(self, run: RunConfig):
        self.run = run

    def setup(self):
        self._client = client(self.run.read.target)
        run = self.run
        self._undo_log = UndoLog(run.write.undo_dir, run.job.name, run.output.run_id,
                                 run.write.mode)

    def process(self, path: str):
        run, write = self.run, self.run.write
        # Streamed in chunks: a backup's file (one per namespace and kind) may be large.
        counters: dict = {}  # namespace -> counter -> n
        entities: dict = {}  # namespace -> records read
        samples: dict = {}  # namespace -> change samples
        letters: list = []
        where = run.read.target.describe()
        for chunk in _chunks(undo.read_records(path), CHUNK):
            by_ns: dict = {}
            for r in _dedupe(chunk):
                by_ns.setdefault(r.get("namespace", "") or "", []).append(r)
            for namespace, records in by_ns.items():
                entities[namespace] = entities.get(namespace, 0) + len(records)
                mine = counters.setdefault(namespace, {})

                def count(name: str, n: int = 1, mine=mine) -> None:
                    if n:
                        mine[name] = mine.get(name, 0) + n

                batches = w.batches(records, w.BLIND_BATCH, w.MAX_COMMIT_BYTES,
                                    size=lambda r: 0,
                                    group=lambda r: w.entity_group(ej.key_from_json(r["key"])),
                                    max_groups=write.transaction_groups)
                for batch in batches:
                    self._restore(batch, namespace, count, samples.setdefault(namespace, []),
                                  letters, where)
        if letters:
            parts = run.output.dead_letter_parts
            if parts:
                write_part(parts, deadletters.restore_part_name(path), letters)
        worker = f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"
        for namespace, n in entities.items():
            totals = Totals(entities=n, records=0, slices=1, workers={worker})
            merge_counters(totals.counters, counters[namespace], run.job.max_counters)
            yield namespace, totals
            for s in samples.get(namespace, [])[:write.changes_sample]:
                yield beam.pvalue.TaggedOutput(CHANGES, (namespace, s))

    def _restore(self, batch: list, namespace: str, count: Callable, samples: list,
                 letters: list, where: str) -> None:
        """A batch of records restored in a transaction (looked up only, in a dry run)."""
        what = f"restoring {len(batch)} entities in namespace {namespace_label(namespace)}"

        def attempt(records: list) -> None:
            keys = [bind_key(self._client, ej.key_from_json(r["key"])) for r in records]
            if self.run.write.dry_run:
                current = lookup(self._client, keys, self.run.read.retry, what, where=where)
                decisions = [decide(r, current.get(k), k) for r, k in zip(records, keys)]
            else:
                _, decisions = transact_ops(
                    self._client, keys, lambda current: _ops(records, keys, current),
                    self._undo_log, namespace, self.run.read.retry, what, where)
            self._account(records, decisions, namespace, count, samples, letters)

        def gave_up(record: dict, e: Contention) -> None:
            raise MapperError(f"{what}: contention outlasted every retry") from None

        w.retry_then_halve(
            batch, attempt,
            lambda half: self._restore(half, namespace, count, samples, letters, where),
            self.run.write.contention_retries, lambda: count(w.CONFLICTS), gave_up)

    def _account(self, batch: list, decisions: list, namespace: str, count: Callable,
                 samples: list, letters: list) -> None:
        """What was restored counted and sampled; what changed since, a dead letter."""
        run = self.run
        tally([d.op for d in decisions if d.outcome == "restore"], namespace, count, samples,
              run.write.changes_sample)
        for r, d in zip(batch, decisions):
            if d.outcome == "unchanged":
                count(w.UNCHANGED)
            elif d.outcome == "changed_since":
                count(w.CHANGED_SINCE)
                key = ej.key_from_json(r["key"])
                where_key = format_path(path_from_flat(key.flat_path))
                why = ("differs from the backup: not overwritten (the backup's version is in "
                       f"the backup record; {where_key})" if r.get("mode") == BACKUP else
                       "changed again since the run that is undone: not restored (its version "
                       f"before that run is in the undo record; {where_key})")
                letters.append(deadletters.write_error(
                    run.job.name, namespace, key.kind, key.flat_path, why,
                    error="DiffersFromBackup" if r.get("mode") == BACKUP else "ChangedSince",
                    mutation="restore"))


def _ops(records: list, keys: list, current: dict) -> tuple[list, list]:
    """In the transaction: the ops that restore ``records``, and every record's decision."""
    decisions = [decide(r, current.get(k), k) for r, k in zip(records, keys)]
    return [d.op for d in decisions if d.op is not None], decisions


class RestoreFromUndoLog(beam.PTransform):
    """PBegin -> {'summary': dict (not yet written), 'changes': the changes file or None}."""

    def __init__(self, run: RunConfig, location: str):
        super().__init__()
        self.run, self.location = run, location

    def expand(self, pbegin):
        run = self.run
        files = (pbegin
                 | "Start" >> beam.Create([None])
                 | "JobStarted" >> beam.ParDo(JobStartedFn(run.job))
                 | "UndoFiles" >> beam.FlatMap(lambda _: undo.undo_files(self.location))
                 | "Spread" >> beam.Reshuffle())
        restored = files | "Restore" >> beam.ParDo(RestoreFileFn(run)).with_outputs(
            CHANGES, main="totals")
        summary = (restored.totals
                   | "NamespaceTotals" >> beam.CombinePerKey(TotalsFn(run.job.max_counters))
                   | "JobTotals" >> beam.CombineGlobally(JobSummaryFn())
                   | "JobCompleted" >> beam.ParDo(JobCompletedFn(run.job))
                   | "Summary" >> beam.ParDo(BuildSummaryFn(run)))
        changes = (restored[CHANGES] | "Changes" >> WriteChanges(run.write)
                   if run.write.changes_path else None)
        return {"summary": summary, "changes": changes, "records": None, "files": None}


def location_files(location: str) -> list:
    """The undo files at ``location`` (checked at launch)."""
    if not FileSystems.exists(location):
        return []
    return undo.undo_files(location)
