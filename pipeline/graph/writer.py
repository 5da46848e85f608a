"""One worker's writes back to Datastore, slice by slice (``ReadRangeFn`` drives it).

A slice's mutations are written before the slice checkpoints, so a slice that fails is read
and applied again (``migrate`` is idempotent: what it already changed comes back unchanged and
is not written); nothing of a slice outlives its failure unwritten.

- **Read-modify-write** (the job's ``migrate``): called on a copy of each entity read; the
  entities it leaves as they are cost nothing more. The others, by mode:
  ``dry_run`` counts them and keeps a sample; ``blind`` writes what ``migrate`` made of the
  version read (last writer wins); ``transactional`` looks them up again in a transaction per
  batch, applies ``migrate`` to the current version and commits only what really changes, so a
  concurrent update between the read and the write is never lost. A batch that keeps meeting
  contention is retried, then halved down to single entities; only an entity that still
  conflicts becomes a dead letter.
- **Free mutations** (``Put``, ``Delete`` yielded by ``next``): always blind, after a lookup of
  what is there (the undo log's ``before``; a put of exactly what is there is not written).

Every entity changed or deleted is first written to the undo log as it was (from the
transaction's own lookup in ``transactional`` mode), durably, before its commit. Each
mutation is counted in the slice's counters (``pipeline.core.writes``): put, changed, deleted,
unchanged, gone, conflicts, failed, outside_namespaces.

Commits (blind ones, and a transaction's after its lookup and ``migrate``) are sent while the
slice reads and migrates on (``commits``: two in flight at most, never two on one entity
group, settled on this thread before the slice checkpoints).

The transaction with its undo records, the undo records, the key binding, the retry-then-halve
of a batch that meets contention and the change samples are the write-back path restore uses
too (``writeback``, ``pipeline.core.writes``, ``pipeline.datastore.writes``).
"""
from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Callable, Optional

from google.api_core import exceptions as gexc

from pipeline.api.job import Context
from pipeline.api.mutations import BLIND, DELETE, TRANSACTIONAL, UNCHANGED, Delete, Put
from pipeline.config import JobConfig, ReadConfig, WriteConfig
from pipeline.core import writes as w
from pipeline.core.keyorder import format_path, path_from_flat
from pipeline.core.namespaces import namespace_label
from pipeline.core.writes import Contention, Op
from pipeline.datastore import entity_json as ej
from pipeline.datastore.writes import (
    begin_with_lookup,
    bind,
    bind_key,
    commit,
    commit_blind,
    is_contention,
    lookup,
    roll_back_quietly,
)
from pipeline.errors import MapperError
from pipeline.graph.commits import Commits, Sent, group_id
from pipeline.graph.writeback import UndoLog, mutations, tally, transact_ops

log = logging.getLogger(__name__)

#: Errors that say Datastore is overloaded: the adaptive backoff holds commits back on them.
OVERLOAD = (gexc.ResourceExhausted, gexc.ServiceUnavailable, gexc.DeadlineExceeded,
            gexc.RetryError)
THROTTLED_MS = "writes.throttled_ms"  # time a worker held its commits back (ramp-up, overload)


class Overload:
    """Adaptive backoff, Beam's Datastore writer's formula (its ``AdaptiveThrottler``, the SRE
    book's client-side throttling): while Datastore refuses for overload (resource exhausted,
    unavailable, deadline), attempts are held back with the probability ``(requests - 1.25 x
    successes) / (requests + 1)`` over the last 2 minutes, ``delay`` seconds at a time.

    Two departures from Beam's writer, both measured:

    - An attempt is counted when it **ends** (``ended``), from whichever thread: a request,
      and a success unless Datastore refused it for overload (a conflict or a refusal of the
      data is an answer). Beam counts a request when it is admitted and its success after;
      with commits in flight the next one is admitted before the last has ended, and the
      first two requests of a run would already hold the third back half the time.
    - A wait is not counted as a request. Beam counts each; on one worker thread nothing can
      succeed while it waits, so each wait raised the odds of the next: three reset
      connections early in a run of 15 transactions held it back for minutes (195 s, in the
      fault test)."""

    def __init__(self, delay: float = 1.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        from apache_beam.io.components.adaptive_throttler import AdaptiveThrottler
        self.throttler = AdaptiveThrottler(window_ms=120_000, bucket_ms=1_000,
                                           overload_ratio=1.25)
        self.delay, self.clock, self.sleep = delay, clock, sleep
        self._lock = threading.Lock()  # commits in flight end on their own threads

    def admit(self) -> float:
        """Before an attempt: wait while the recent failures say so; the seconds waited."""
        waited = 0.0
        while self._held_back():
            self.sleep(self.delay)
            waited += self.delay
        return waited

    def _held_back(self) -> bool:
        t = self.throttler  # its sums and formula (apache-beam is pinned: 2.77.0)
        with self._lock:
            now = int(self.clock() * 1000)
            return t._random.uniform(0, 1) < t._throttling_probability(now)

    def ended(self, err: Optional[BaseException] = None) -> None:
        """An attempt ended: ``err`` None (it went through) or what it raised."""
        with self._lock:
            now = int(self.clock() * 1000)
            self.throttler._all_requests.add(now, 1)
            if not isinstance(err, OVERLOAD):
                self.throttler.successful_request(now)


class MigrateError(Exception):
    """``migrate`` raised, or returned what the writer cannot write (carried to a letter)."""


class WriteFailed(MapperError):
    """A batch could not be written (not one entity's fault): the slice fails and is retried."""


def outcome(before: Any, result: Any, before_pb: Any = None,
            result_pb: Any = None) -> Optional[Any]:
    """What ``migrate`` returned for ``before`` -> the entity to write, DELETE, or None
    (unchanged); MigrateError for anything else. ``before_pb``/``result_pb``: their ``ej.Pb``s,
    when the caller keeps them (one conversion each)."""
    if result is None or result is UNCHANGED:
        return None
    if result is DELETE:
        return DELETE
    key = getattr(result, "key", None)
    if key is None or not hasattr(result, "items"):
        raise MigrateError(f"migrate() returned {type(result).__name__}: return the entity, "
                           "pipeline.DELETE or pipeline.UNCHANGED (None)")
    if not _same_key(key, before.key):
        raise MigrateError(f"migrate() returned an entity with another key "
                           f"({format_path(path_from_flat(key.flat_path))}): it changes the "
                           "entity it is given; yield pipeline.Put(...) from next() to write "
                           "other entities")
    if before_pb is not None and result_pb is not None:
        # the same key (project and database too): the messages compare as they are
        return None if before_pb.serialized() == result_pb.serialized() else result
    return None if ej.same(before, result) else result


def _same_key(a: Any, b: Any) -> bool:
    """``a == b`` for two keys (``Key.__eq__`` deep-copies both paths to see if one is
    partial); a partial key (odd path) never equals another, as there."""
    path = a.flat_path
    return (len(path) % 2 == 0 and path == b.flat_path and a.project == b.project
            and a.namespace == b.namespace and a.database == b.database)


def _pb_of(result: Any) -> Optional[ej.Pb]:
    """``migrate``'s result's ``Pb`` when it is an entity (anything else ``outcome`` refuses)."""
    return ej.Pb(result) if hasattr(result, "items") and \
        getattr(result, "key", None) is not None else None


def _bound_op(c: Any, key: Any, before: Any, after: Any, before_pb: ej.Pb,
              after_pb: Optional[ej.Pb]) -> Op:
    """The Op writing ``after`` (DELETE: deleting) over ``before``, ``after``'s key bound to
    the client (``bind``); ``after_pb`` kept only while its message still holds that key."""
    if after is DELETE:
        return Op(key, before, None, before_pb=before_pb)
    read_key = after.key
    after = bind(c, after)
    return Op(key, before, after, before_pb=before_pb,
              after_pb=after_pb if after.key is read_key else None)


def sized(op: Op) -> Optional[MigrateError]:
    """``op.size`` set (what is written, from its ``Pb`` when made); the error when Datastore
    would refuse an entity that large."""
    op.size = 0 if op.after is None else (
        op.after_pb.size() if op.after_pb is not None else ej.size_bytes(op.after))
    if op.size > w.MAX_ENTITY_BYTES:
        return MigrateError(f"the migrated entity is {op.size} bytes; Datastore takes at "
                            f"most {w.MAX_ENTITY_BYTES}")
    return None


class Writer:
    """The writes of one worker (``setup`` once, then ``start`` and ``finish`` per slice)."""

    def __init__(self, job: JobConfig, read: ReadConfig, write: WriteConfig, run_id: str,
                 client: Any, fail: Callable[[str, str, tuple, Exception, str], None]):
        self.job, self.read, self.write, self.run_id, self.c = job, read, write, run_id, client
        self.fail = fail  # (namespace, kind, key flat path, error, mutation) -> dead letter
        self.throttle = w.Throttle(w.RampUp(enabled=write.rampup, workers=write.workers_hint,
                                            cap=write.max_rate))
        self.overload = Overload()
        rq_ns = read.query.namespaces
        self.namespaces_read = set(rq_ns) if rq_ns is not None else None
        self.warned_outside: set = set()
        self.where = read.target.describe()
        self.undo_log = UndoLog(write.undo_dir, job.name, run_id, write.mode)
        self.written = 0  # mutations this worker committed (the progress lines' writes)
        self.commits = Commits(self._settle)

    # --- per slice -----------------------------------------------------------------------

    def start(self, ctx: Context) -> None:
        self.commits.abandon()  # a slice that failed left them: they end before it is re-read
        self.ctx = ctx
        self.pending: list = []  # migrations: Op (blind) or the read entity (transactional)
        self.free: dict = {}  # namespace -> {key: Put | Delete} (the last for a key wins)
        self.samples: list = []

    def finish(self) -> list:
        """Write everything the slice left pending; returns its before/after samples."""
        self._flush(self._flush_migrations)
        for namespace in list(self.free):
            self._flush(self._flush_free, namespace)
        self._flush(self.commits.clear)
        return self.samples

    def _flush(self, fn, *args) -> None:
        """A flush that fails fails the slice (which is then read and applied again), never
        one entity: the batch's other mutations must not be dropped as its dead letters; the
        slice's other commits in flight end first."""
        try:
            fn(*args)
        except MapperError:
            self.commits.abandon()
            raise
        except Exception as e:
            self.commits.abandon()
            raise WriteFailed(f"writing to {self.where} failed: {type(e).__name__}: "
                              f"{str(e)[:300]}") from e

    # --- read-modify-write -----------------------------------------------------------------

    def migrate(self, entity: Any) -> None:
        """The job's ``migrate`` on a copy of the version read (raises MigrateError)."""
        ctx = self.ctx
        ctx.transaction = False
        before_pb = ej.Pb(entity)
        try:
            result = self.job.spec.migrate(ctx, before_pb.copy())
        except MapperError:
            raise
        except Exception as e:
            raise MigrateError(f"migrate() raised {type(e).__name__}: {e}") from e
        result_pb = _pb_of(result)
        after = outcome(entity, result, before_pb, result_pb)
        if after is None:
            ctx.counters.inc(w.UNCHANGED)
            return
        entity = bind(self.c, entity)
        op = _bound_op(self.c, entity.key, entity, after, before_pb, result_pb)
        if self.write.dry_run:
            self._tally([op], self.ctx.namespace)
            return
        if self.write.mode == TRANSACTIONAL:
            self.pending.append(entity)
            if w.count_groups(self.pending, lambda e: w.entity_group(e.key)) >= \
                    self.write.transaction_groups:
                self._flush(self._flush_migrations)
            return
        too_big = sized(op)
        if too_big is not None:
            raise too_big
        self.pending.append(op)
        if len(self.pending) >= self.write.batch:
            self._flush(self._flush_migrations)

    def _flush_migrations(self) -> None:
        pending, self.pending = self.pending, []
        if not pending:
            return
        if self.write.mode == TRANSACTIONAL:
            for batch in w.batches(pending, w.BLIND_BATCH, w.MAX_COMMIT_BYTES,
                                   size=lambda e: 0, group=lambda e: w.entity_group(e.key),
                                   max_groups=self.write.transaction_groups):
                self._send_transaction(batch)
        else:
            self._commit_blind(self.ctx.namespace, pending)

    def _transaction(self, entities: list) -> None:
        """Read entities, migrated again in a transaction: retried, then halved, on contention
        or when the changes exceed a commit; an entity Datastore refuses becomes a letter."""
        ns, kind = self.ctx.namespace, self.ctx.kind
        self.commits.clear(group_id(e.key) for e in entities)  # a free mutation's commit
        try:
            w.retry_then_halve(entities, self._attempt, self._transaction,
                               self.write.contention_retries, self._conflict,
                               lambda entity, e: self._failed(
                                   ns, kind, entity.key, e, "transactional write (contention)"))
        except _TooBig:
            for half in w.halves(entities):
                self._transaction(half)
        except (gexc.InvalidArgument, gexc.FailedPrecondition) as e:
            if len(entities) > 1:
                for one in entities:  # find the one Datastore refuses
                    self._transaction([one])
                return
            self._failed(ns, kind, entities[0].key, e, "transactional write")

    def _send_transaction(self, entities: list) -> None:
        """The first attempt of a transaction over ``entities``: looked up and decided here,
        its undo records written, its commit sent (``commits``) while the slice goes on. Anything
        but a plain success (contention, a retryable error, a batch too big, a refusal) sends the
        batch through ``_transaction``, which retries, halves and finds what Datastore refuses;
        its decision is made again on a fresh lookup (``migrate`` is idempotent)."""
        keys = [bind_key(self.c, e.key) for e in entities]
        ids = [group_id(k) for k in keys]
        self.commits.clear(ids)  # a free mutation's commit first
        ns, kind = self.ctx.namespace, self.ctx.kind
        self._hold(self.throttle.wait(len(keys)) + self.overload.admit())
        began: list = []
        try:
            current = begin_with_lookup(self.c, keys, self.read.retry,
                                        f"looking up {len(keys)} {kind} in a transaction",
                                        began)
            ops, decided = self._decide(keys, current)
        except MapperError:
            roll_back_quietly(self.c, began, self.read.retry)
            raise
        except Exception as e:
            roll_back_quietly(self.c, began, self.read.retry)
            self.overload.ended(e)
            self._transaction(entities)
            return
        path = self.undo_log.write(ns, ops)
        puts, deletes = mutations(ops)
        transaction, policy = began[0], self.read.retry

        def call(held_ms: list) -> None:  # on a pool thread: the commit only, no retry
            commit(self.c, puts, deletes, policy, transaction=transaction)
            self.overload.ended()  # a failure is counted where it is settled

        self.commits.send(ns, _Transaction(entities, ops, decided), ids, path, call)

    def _settled_transaction(self, sent: Sent) -> None:
        """A transaction's commit ended: what it wrote counted; failed, the batch goes through
        ``_transaction`` (an undo file is deleted only when nothing of it can have been
        written: contention or a refusal; after another error the commit may have landed)."""
        txn = sent.batch
        try:
            sent.future.result()
        except gexc.GoogleAPICallError as e:
            if is_contention(e):
                self._conflict()
            else:
                self.overload.ended(e)
            if is_contention(e) or isinstance(e, (gexc.InvalidArgument,
                                                  gexc.FailedPrecondition)):
                self.undo_log.discard(sent.undo_path)
            self._transaction(txn.entities)
            return
        self._counted(sent.namespace, txn.ops, txn.decided)

    def _counted(self, ns: str, ops: list, decided: dict) -> None:
        """A committed transaction's ops and decisions, counted (and its letters)."""
        self._tally(ops, ns)
        self.written += len(ops)
        for name in (w.UNCHANGED, w.GONE):
            if decided[name]:
                self.ctx.counters.inc(name, decided[name])
        for key, err in decided["errors"]:
            self._failed(ns, self.ctx.kind, key, err, "migrate (in the transaction)")

    def _attempt(self, entities: list) -> None:
        """One transaction over ``entities`` (raises Contention when it lost)."""
        keys = [bind_key(self.c, e.key) for e in entities]
        ns, kind = self.ctx.namespace, self.ctx.kind
        self._hold(self.throttle.wait(len(keys)) + self.overload.admit())
        try:
            ops, decided = transact_ops(
                self.c, keys, lambda current: self._decide(keys, current), self.undo_log, ns,
                self.read.retry, f"writing {len(keys)} {kind} in a transaction in namespace "
                f"{namespace_label(ns)}", self.where, self._on_retry)
        except Contention:
            raise  # counted by _conflict
        except Exception as e:
            self.overload.ended(e)
            raise
        self.overload.ended()
        self._counted(ns, ops, decided)

    def _decide(self, keys: list, current: dict) -> tuple[list, dict]:
        """``migrate`` on the current versions, in the transaction: the ops to commit, and
        how many were unchanged or gone, and which failed."""
        ops, errors = [], []
        decided = {w.UNCHANGED: 0, w.GONE: 0, "errors": errors}
        self.ctx.transaction = True
        try:
            for key in keys:
                cur = current.get(key)
                if cur is None:
                    decided[w.GONE] += 1
                    continue
                cur_pb = ej.Pb(cur)  # made once: the copy, the unchanged check, the undo record
                try:
                    result = self.job.spec.migrate(self.ctx, cur_pb.copy())
                    result_pb = _pb_of(result)
                    after = outcome(cur, result, cur_pb, result_pb)
                except MapperError:
                    raise
                except Exception as e:
                    errors.append((key, e))
                    continue
                if after is None:
                    decided[w.UNCHANGED] += 1
                    continue
                op = _bound_op(self.c, key, cur, after, cur_pb, result_pb)
                too_big = sized(op)
                if too_big is not None:
                    errors.append((key, too_big))
                    continue
                ops.append(op)
        finally:
            self.ctx.transaction = False
        if sum(o.size for o in ops) > w.MAX_COMMIT_BYTES and len(keys) > 1:
            raise _TooBig()
        return ops, decided

    # --- free mutations ------------------------------------------------------------------

    def mutation(self, m: Any) -> None:
        """A ``Put`` or ``Delete`` that ``next`` yielded (raises MigrateError when unusable)."""
        if isinstance(m, Put):
            key = getattr(m.entity, "key", None)
            if key is None or not hasattr(m.entity, "items"):
                raise MigrateError(f"Put() holds a {type(m.entity).__name__}, not a "
                                   "google.cloud.datastore.Entity")
        elif isinstance(m, Delete):
            key = m.key
            if not hasattr(key, "flat_path"):
                raise MigrateError(f"Delete() holds a {type(key).__name__}, not a "
                                   "google.cloud.datastore.Key")
        else:
            raise MigrateError(f"not a mutation: {type(m).__name__}")
        if key.is_partial:
            raise MigrateError(f"the key {format_path(path_from_flat(key.flat_path + (0,)))} "
                               "is incomplete: give it an id or name (ctx.allocate_ids)")
        if key.project != self.c.project or getattr(key, "database", None) != \
                getattr(self.c, "database", None):
            raise MigrateError(f"the key is of project {key.project!r}, database "
                               f"{getattr(key, 'database', None)!r}; this run writes to "
                               f"{self.where}: make keys with ctx.key()")
        ns = key.namespace or ""
        if self.namespaces_read is not None and ns not in self.namespaces_read:
            self.ctx.counters.inc(w.OUTSIDE)
            if ns not in self.warned_outside:
                self.warned_outside.add(ns)
                log.warning("job %s writes into namespace %s, which this run does not read",
                            self.job.name, namespace_label(ns))
        if isinstance(m, Put):
            size = ej.size_bytes(m.entity)
            if size > w.MAX_ENTITY_BYTES:
                raise MigrateError(f"the entity to put is {size} bytes; Datastore takes at "
                                   f"most {w.MAX_ENTITY_BYTES}")
        pending = self.free.setdefault(ns, {})
        pending.pop(key, None)
        pending[key] = m
        if len(pending) >= self.write.batch:
            self._flush(self._flush_free, ns)

    def _flush_free(self, namespace: str) -> None:
        pending = self.free.pop(namespace, {})
        if not pending:
            return
        keys = list(pending)
        self.commits.clear(group_id(k) for k in keys)  # the undo's ``before``: what is there
        current = lookup(self.c, keys, self.read.retry,
                         f"looking up {len(keys)} entities to write in namespace "
                         f"{namespace_label(namespace)}", where=self.where)
        ops = []
        for key in keys:
            m, cur = pending[key], current.get(key)
            if isinstance(m, Delete):
                if cur is None:
                    self.ctx.counters.inc(w.UNCHANGED)
                    continue
                ops.append(Op(key, cur, None))
            elif ej.same(cur, m.entity):
                self.ctx.counters.inc(w.UNCHANGED)
            else:
                ops.append(Op(key, cur, m.entity, ej.size_bytes(m.entity)))
        if self.write.dry_run:
            self._tally(ops, namespace)
            return
        self._commit_blind(namespace, ops)

    # --- blind commits -------------------------------------------------------------------

    def _commit_blind(self, namespace: str, ops: list) -> None:
        for batch in w.batches(ops, self.write.batch, w.MAX_COMMIT_BYTES, size=lambda o: o.size):
            self._commit_batch(namespace, batch)

    def _commit_batch(self, namespace: str, batch: list) -> None:
        """``batch`` sent (``commits``), after its undo records; settled by ``_settle``."""
        keys = [group_id(o.key) for o in batch]
        self.commits.clear(keys)
        self._hold(self.throttle.wait(len(batch)) + self.overload.admit())
        path = self.undo_log.write(namespace, batch)
        puts, deletes = mutations(batch)
        what = f"writing {len(batch)} entities in namespace {namespace_label(namespace)}"

        def call(held_ms: list) -> None:  # on a pool thread: the call and its retries only
            def on_retry(err: Exception) -> None:
                self.overload.ended(err)
                if isinstance(err, OVERLOAD):  # see _on_retry
                    held_ms.append(int(self.overload.admit() * 1000))

            try:
                commit_blind(self.c, puts, deletes, self.read.retry, what, self.where, on_retry)
            except BaseException as e:
                self.overload.ended(e)
                raise
            self.overload.ended()

        self.commits.send(namespace, batch, keys, path, call)

    def _settle(self, sent: Sent) -> None:
        """A commit ended: counted and sampled; refused (one entity Datastore will not take),
        its batch is sent again one by one to find that entity, a dead letter."""
        if isinstance(sent.batch, _Transaction):
            self._settled_transaction(sent)
            return
        namespace, batch = sent.namespace, sent.batch
        try:
            sent.future.result()
        except (gexc.InvalidArgument, gexc.FailedPrecondition) as e:
            self.undo_log.discard(sent.undo_path)  # refused as a whole: nothing of it was written
            if len(batch) > 1:
                for op in batch:  # find the one Datastore refuses
                    self._commit_batch(namespace, [op])
                return
            self._failed(namespace, batch[0].key.kind, batch[0].key, e, "blind write")
            return
        finally:
            self._hold(sum(sent.held_ms) / 1000)
        self._tally(batch, namespace)
        self.written += len(batch)

    # --- helpers -------------------------------------------------------------------------

    def _tally(self, ops: list, namespace: str) -> None:
        """Ops written (or that a dry run would write): counted, and sampled."""
        tally(ops, namespace, self.ctx.counters.inc, self.samples, self.write.changes_sample)

    def _failed(self, namespace: str, kind: str, key: Any, err: Exception, what: str) -> None:
        self.ctx.counters.inc(w.FAILED)
        self.fail(namespace, kind, key.flat_path, err, what)

    def _on_retry(self, err: Exception) -> None:
        # Logged by the retry path and counted in the slice's retries; the next attempt is
        # another request to the adaptive backoff, held back while failures dominate.
        self.overload.ended(err)
        if isinstance(err, OVERLOAD):  # other errors (a reset connection) are not overload
            self._hold(self.overload.admit())

    def _conflict(self) -> None:
        # Datastore answered: the refusal is about these entities, not an overload (halving
        # finds the one that conflicts), so the backoff counts it as answered.
        self.overload.ended()
        self.ctx.counters.inc(w.CONFLICTS)

    def _hold(self, seconds: float) -> None:
        if seconds > 0:
            self.ctx.counters.inc(THROTTLED_MS, int(seconds * 1000))


@dataclasses.dataclass
class _Transaction:
    """A transaction whose commit is in flight: its batch, and what it decided."""

    entities: list
    ops: list
    decided: dict


class _TooBig(Exception):
    """A transaction's changes exceed the commit's size bound: halve the batch."""


__all__ = ["BLIND", "TRANSACTIONAL", "MigrateError", "Writer", "outcome"]
