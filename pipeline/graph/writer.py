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
"""
from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any, Callable, Optional

from google.api_core import exceptions as gexc

from pipeline.api.job import Context
from pipeline.api.mutations import BLIND, DELETE, TRANSACTIONAL, UNCHANGED, Delete, Put
from pipeline.config import JobConfig, ReadConfig, WriteConfig
from pipeline.core import writes as w
from pipeline.core.keyorder import format_path, path_from_flat
from pipeline.core.namespaces import namespace_label
from pipeline.datastore import entity_json as ej
from pipeline.datastore.writes import Contention, commit_blind, lookup, transact
from pipeline.errors import MapperError
from pipeline.sinks.files import undo

log = logging.getLogger(__name__)

#: Seconds before the first retry of a batch that met contention (doubling).
CONTENTION_BACKOFF = 0.2
#: Errors that say Datastore is overloaded: the adaptive backoff holds commits back on them.
OVERLOAD = (gexc.ResourceExhausted, gexc.ServiceUnavailable, gexc.DeadlineExceeded,
            gexc.RetryError)
THROTTLED_MS = "writes.throttled_ms"  # time a worker held its commits back (ramp-up, overload)


class Overload:
    """Adaptive backoff, as Beam's Datastore writer does it (its ``AdaptiveThrottler``, the SRE
    book's client-side throttling): every commit attempt is a request, every commit that went
    through a success; while Datastore refuses (contention, resource exhausted, unavailable),
    attempts are held back with the probability ``(requests - 1.25 x successes) /
    (requests + 1)`` over the last 2 minutes, ``delay`` seconds at a time."""

    def __init__(self, delay: float = 1.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        from apache_beam.io.components.adaptive_throttler import AdaptiveThrottler
        self.throttler = AdaptiveThrottler(window_ms=120_000, bucket_ms=1_000,
                                           overload_ratio=1.25)
        self.delay, self.clock, self.sleep = delay, clock, sleep

    def admit(self) -> float:
        """Before an attempt: wait while the recent failures say so; the seconds waited."""
        waited = 0.0
        while self.throttler.throttle_request(int(self.clock() * 1000)):
            self.sleep(self.delay)
            waited += self.delay
        return waited

    def succeeded(self) -> None:
        self.throttler.successful_request(int(self.clock() * 1000))


class MigrateError(Exception):
    """``migrate`` raised, or returned what the writer cannot write (carried to a letter)."""


class WriteFailed(MapperError):
    """A batch could not be written (not one entity's fault): the slice fails and is retried."""


@dataclasses.dataclass
class Op:
    """One mutation to write: ``after`` None deletes; ``before`` as read (blind) or looked up."""

    key: Any
    before: Any
    after: Any
    size: int = 0
    before_pb: Any = None  # ej.Pb of before / after, when made already (blind migrations)
    after_pb: Any = None

    @property
    def change(self) -> str:
        if self.after is None:
            return "deleted"
        return "put" if self.before is None else "changed"


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
    if key != before.key:
        raise MigrateError(f"migrate() returned an entity with another key "
                           f"({format_path(path_from_flat(key.flat_path))}): it changes the "
                           "entity it is given; yield pipeline.Put(...) from next() to write "
                           "other entities")
    if before_pb is not None and result_pb is not None:
        return None if before_pb.fingerprint() == result_pb.fingerprint() else result
    return None if ej.same(before, result) else result


def _root(key: Any) -> tuple:
    return tuple(key.flat_path[:2])


def _change_sample(namespace: str, op: Op) -> dict:
    """A before/after pair for changes.jsonl: the entities (lossless) and what differs."""
    before = dict(op.before) if op.before is not None else {}
    after = dict(op.after) if op.after is not None else {}
    diff = {name: [_plain(before.get(name)), _plain(after.get(name))]
            for name in sorted(set(before) | set(after))
            if name not in before or name not in after or not _equal(before[name], after[name])}
    return {"namespace": namespace, "kind": op.key.kind,
            "key": format_path(path_from_flat(op.key.flat_path)), "change": op.change,
            "diff": diff,
            "before": ej.entity_to_json(op.before) if op.before is not None else None,
            "after": ej.entity_to_json(op.after) if op.after is not None else None}


def _equal(a, b) -> bool:
    try:
        return type(a) is type(b) and a == b
    except Exception:
        return False


def _plain(v: Any) -> Any:
    """A property value, readable in JSON (the full entity is in before/after)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if hasattr(v, "flat_path"):
        return format_path(path_from_flat(v.flat_path))
    if isinstance(v, bytes):
        return f"<{len(v)} bytes>"
    return str(v)


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
        self.written = 0  # mutations this worker committed (the progress lines' writes)

    # --- per slice -----------------------------------------------------------------------

    def start(self, ctx: Context) -> None:
        self.ctx = ctx
        self.pending: list = []  # migrations: Op (blind) or the read entity (transactional)
        self.free: dict = {}  # namespace -> {key: Put | Delete} (the last for a key wins)
        self.samples: list = []

    def finish(self) -> list:
        """Write everything the slice left pending; returns its before/after samples."""
        self._flush(self._flush_migrations)
        for namespace in list(self.free):
            self._flush(self._flush_free, namespace)
        return self.samples

    def _flush(self, fn, *args) -> None:
        """A flush that fails fails the slice (which is then read and applied again), never
        one entity: the batch's other mutations must not be dropped as its dead letters."""
        try:
            fn(*args)
        except MapperError:
            raise
        except Exception as e:
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
        result_pb = ej.Pb(result) if hasattr(result, "items") and \
            getattr(result, "key", None) is not None else None
        after = outcome(entity, result, before_pb, result_pb)
        if after is None:
            ctx.counters.inc(w.UNCHANGED)
            return
        entity = self._own(entity)
        if after is not DELETE:
            after = self._own(after)
        op = Op(entity.key, entity, None if after is DELETE else after,
                before_pb=before_pb, after_pb=result_pb if after is not DELETE else None)
        if self.write.dry_run:
            self._count(op.change)
            self._sample(op)
            return
        if self.write.mode == TRANSACTIONAL:
            self.pending.append(entity)
            if w.count_groups(self.pending, lambda e: _root(e.key)) >= \
                    self.write.transaction_groups:
                self._flush(self._flush_migrations)
            return
        op.size = (op.after_pb.size() if op.after_pb is not None else ej.size_bytes(op.after)) \
            if op.after is not None else 0
        if op.size > w.MAX_ENTITY_BYTES:
            raise MigrateError(f"the migrated entity is {op.size} bytes; Datastore takes at "
                               f"most {w.MAX_ENTITY_BYTES}")
        self.pending.append(op)
        if len(self.pending) >= self.write.batch:
            self._flush(self._flush_migrations)

    def _flush_migrations(self) -> None:
        pending, self.pending = self.pending, []
        if not pending:
            return
        if self.write.mode == TRANSACTIONAL:
            for batch in w.batches(pending, w.BLIND_BATCH, w.MAX_COMMIT_BYTES,
                                   size=lambda e: 0, group=lambda e: _root(e.key),
                                   max_groups=self.write.transaction_groups):
                self._transaction(batch, 0)
        else:
            self._commit_blind(self.ctx.namespace, pending)

    def _transaction(self, entities: list, halvings: int) -> None:
        keys = [self._own_key(e.key) for e in entities]
        ns, kind = self.ctx.namespace, self.ctx.kind
        for attempt in range(self.write.contention_retries + 1):
            decided: dict = {}

            def decide(current: dict, decided=decided):
                decided.clear()
                ops, unchanged, gone, errors = [], 0, 0, []
                self.ctx.transaction = True
                try:
                    for key in keys:
                        cur = current.get(key)
                        if cur is None:
                            gone += 1
                            continue
                        try:
                            after = outcome(cur, self.job.spec.migrate(self.ctx,
                                                                       ej.copy_entity(cur)))
                        except MapperError:
                            raise
                        except Exception as e:
                            errors.append((key, e))
                            continue
                        if after is None:
                            unchanged += 1
                            continue
                        op = Op(key, cur, None if after is DELETE else self._own(after))
                        op.size = (op.after_pb.size() if op.after_pb is not None else ej.size_bytes(op.after)) \
            if op.after is not None else 0
                        if op.size > w.MAX_ENTITY_BYTES:
                            errors.append((key, MigrateError(
                                f"the migrated entity is {op.size} bytes; Datastore takes "
                                f"at most {w.MAX_ENTITY_BYTES}")))
                            continue
                        ops.append(op)
                finally:
                    self.ctx.transaction = False
                if sum(o.size for o in ops) > w.MAX_COMMIT_BYTES and len(keys) > 1:
                    raise _TooBig()
                decided.update(ops=ops, unchanged=unchanged, gone=gone, errors=errors,
                               undo=self._undo(ns, ops))
                return ([o.after for o in ops if o.after is not None],
                        [o.key for o in ops if o.after is None], None)

            try:
                self._hold(self.throttle.wait(len(keys)) + self.overload.admit())
                transact(self.c, keys, decide, self.read.retry,
                         f"writing {len(keys)} {kind} in a transaction in namespace "
                         f"{namespace_label(ns)}", self.where, self._on_retry)
            except Contention as e:
                # Datastore answered: the refusal is about these entities, not an overload
                # (halving finds the one that conflicts), so the backoff counts it as answered.
                self.overload.succeeded()
                undo.discard(decided.get("undo"))  # that transaction did not commit
                self.ctx.counters.inc(w.CONFLICTS)
                if attempt < self.write.contention_retries:
                    time.sleep(CONTENTION_BACKOFF * 2 ** attempt)
                    continue
                if len(entities) > 1:
                    first, second = w.halves(entities)
                    self._transaction(first, halvings + 1)
                    self._transaction(second, halvings + 1)
                    return
                self._failed(ns, kind, keys[0], e, "transactional write (contention)")
                return
            except _TooBig:
                first, second = w.halves(entities)
                self._transaction(first, halvings + 1)
                self._transaction(second, halvings + 1)
                return
            except gexc.GoogleAPICallError as e:
                if len(entities) > 1 and isinstance(e, (gexc.InvalidArgument,
                                                        gexc.FailedPrecondition)):
                    for one in entities:  # find the one Datastore refuses
                        self._transaction([one], halvings + 1)
                    return
                if isinstance(e, (gexc.InvalidArgument, gexc.FailedPrecondition)):
                    self._failed(ns, kind, keys[0], e, "transactional write")
                    return
                raise
            self.overload.succeeded()
            ops = decided["ops"]
            for op in ops:
                self._count(op.change)
                self._sample(op)
            self.written += len(ops)
            for name, n in ((w.UNCHANGED, decided["unchanged"]), (w.GONE, decided["gone"])):
                if n:
                    self.ctx.counters.inc(name, n)
            for key, err in decided["errors"]:
                self._failed(ns, kind, key, err, "migrate (in the transaction)")
            return

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
            for op in ops:
                self._count(op.change)
                self._sample(op, namespace)
            return
        self._commit_blind(namespace, ops)

    # --- blind commits -------------------------------------------------------------------

    def _commit_blind(self, namespace: str, ops: list) -> None:
        for batch in w.batches(ops, self.write.batch, w.MAX_COMMIT_BYTES, size=lambda o: o.size):
            self._commit_batch(namespace, batch)

    def _commit_batch(self, namespace: str, batch: list) -> None:
        self._hold(self.throttle.wait(len(batch)) + self.overload.admit())
        path = self._undo(namespace, batch)
        try:
            commit_blind(self.c, [o.after for o in batch if o.after is not None],
                         [o.key for o in batch if o.after is None], self.read.retry,
                         f"writing {len(batch)} entities in namespace "
                         f"{namespace_label(namespace)}", self.where, self._on_retry)
        except (gexc.InvalidArgument, gexc.FailedPrecondition) as e:
            undo.discard(path)  # refused as a whole: nothing of it was written
            if len(batch) > 1:
                for op in batch:  # find the one Datastore refuses
                    self._commit_batch(namespace, [op])
                return
            self._failed(namespace, batch[0].key.kind, batch[0].key, e, "blind write")
            return
        self.overload.succeeded()
        for op in batch:
            self._count(op.change)
            self._sample(op, namespace)
        self.written += len(batch)

    # --- helpers -------------------------------------------------------------------------

    def _own_key(self, key: Any) -> Any:
        """A key the run read, bound to the run's project and database: the emulator answers
        without the database id, and a commit may not mix databases."""
        if key.project == self.c.project and getattr(key, "database", None) == \
                getattr(self.c, "database", None):
            return key
        return self.c.key(*key.flat_path, namespace=key.namespace)

    def _own(self, entity: Any) -> Any:
        key = self._own_key(entity.key)
        if key is not entity.key:
            entity.key = key
        return entity

    def _undo(self, namespace: str, ops: list) -> Optional[str]:
        if self.write.undo_dir is None or not ops:
            return None
        records = [undo.record(self.job.name, self.run_id, self.write.mode, namespace,
                               op.key.kind, ej.key_to_json(op.key),
                               (op.before_pb.json() if op.before_pb is not None else
                                ej.entity_to_json(op.before)) if op.before is not None else None,
                               ej.fingerprint_of(op.after, op.after_pb)) for op in ops]
        return undo.write_batch(self.write.undo_dir, namespace, records)

    def _count(self, change: str) -> None:
        self.ctx.counters.inc({"put": w.PUT, "changed": w.CHANGED, "deleted": w.DELETED}[change])

    def _sample(self, op: Op, namespace: Optional[str] = None) -> None:
        if len(self.samples) < self.write.changes_sample:
            self.samples.append(_change_sample(
                self.ctx.namespace if namespace is None else namespace, op))

    def _failed(self, namespace: str, kind: str, key: Any, err: Exception, what: str) -> None:
        self.ctx.counters.inc(w.FAILED)
        self.fail(namespace, kind, key.flat_path, err, what)

    def _on_retry(self, err: Exception) -> None:
        # Logged by the retry path and counted in the slice's retries; the next attempt is
        # another request to the adaptive backoff, held back while failures dominate.
        if isinstance(err, OVERLOAD):  # other errors (a reset connection) are not overload
            self._hold(self.overload.admit())

    def _hold(self, seconds: float) -> None:
        if seconds > 0:
            self.ctx.counters.inc(THROTTLED_MS, int(seconds * 1000))


class _TooBig(Exception):
    """A transaction's changes exceed the commit's size bound: halve the batch."""


__all__ = ["BLIND", "TRANSACTIONAL", "MigrateError", "Writer", "outcome"]
