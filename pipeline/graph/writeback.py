"""Write-back, the one path the job's writer (``writer``) and restore (``restore``) share.

- ``transact_ops``: one transaction whose mutations (``Op``s) the caller decides from the
  current versions; their undo records are written, durably, before the commit, and deleted
  when the transaction lost to contention (it did not commit). Retrying, then halving, a batch
  that keeps losing is ``pipeline.core.writes.retry_then_halve``; keys are bound to the run's
  project and database by ``pipeline.datastore.writes.bind_key``.
- ``UndoLog``: the undo records of a batch of ``Op``s (one file per batch).
- ``tally`` and ``change_sample``: what was committed, counted and sampled (changes.jsonl).

No Beam here: the Beam steps are the callers'.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Sequence

from pipeline.core import writes as w
from pipeline.core.keyorder import format_path, path_from_flat
from pipeline.core.retry import RetryPolicy
from pipeline.core.writes import Contention, Op
from pipeline.datastore import entity_json as ej
from pipeline.datastore.writes import transact
from pipeline.sinks.files import undo


@dataclasses.dataclass(frozen=True)
class UndoLog:
    """Where a run's undo records go (``directory`` None: it keeps none), and what they say
    of the run."""

    directory: Optional[str]
    job: str
    run: str
    mode: str

    def records(self, namespace: str, ops: Sequence[Op]) -> list[dict]:
        """One record per op: the entity as it was (None: it did not exist) and a digest of
        what is written (None: deleted); from the ops' ``Pb``s when made already."""
        # the kind from the flat path: Key.kind deep-copies the path
        return [undo.record(self.job, self.run, self.mode, namespace, op.key.flat_path[-2],
                            ej.key_to_json(op.key),
                            (op.before_pb.json() if op.before_pb is not None else
                             ej.entity_to_json(op.before)) if op.before is not None else None,
                            ej.fingerprint_of(op.after, op.after_pb)) for op in ops]

    def discard(self, path: Optional[str]) -> None:
        """The undo file ``write`` made for a batch that surely did not commit."""
        undo.discard(path, self.directory)

    def write(self, namespace: str, ops: Sequence[Op]) -> Optional[str]:
        """The ops' records as one new file, before their commit; its path (None: none)."""
        if self.directory is None or not ops:
            return None
        return undo.write_batch(self.directory, namespace, self.records(namespace, ops))


def transact_ops(c: Any, keys: Sequence, decide: Callable[[dict], tuple[list, Any]],
                 log: UndoLog, namespace: str, policy: RetryPolicy, what: str, where: str,
                 on_retry: Optional[Callable[[Exception], None]] = None) -> tuple[list, Any]:
    """In one transaction: ``decide(current)`` (key -> entity) gives ``(ops, result)``, the
    ops' undo records are written, the ops committed; returns ``(ops, result)`` of the attempt
    that committed. ``Contention`` is raised (for ``retry_then_halve``) with the lost
    attempt's undo records deleted."""
    written: dict = {}

    def choose(current: dict):
        written.clear()
        ops, result = decide(current)
        written["undo"] = log.write(namespace, ops)
        return (*mutations(ops), (ops, result))

    try:
        return transact(c, keys, choose, policy, what, where, on_retry)
    except Contention:
        log.discard(written.get("undo"))  # that transaction did not commit
        raise


def mutations(ops: Sequence[Op]) -> tuple[list, list]:
    """``ops`` as a commit takes them: (puts: the raw message when made already, else the
    entity; deletes: keys)."""
    return ([o.after if o.after_pb is None else o.after_pb.pb for o in ops
             if o.after is not None], [o.key for o in ops if o.after is None])


def tally(ops: Sequence[Op], namespace: str, count: Callable[[str], None], samples: list,
          limit: int) -> None:
    """Committed ``ops``: each counted (put, changed, deleted); sampled while ``samples``
    holds fewer than ``limit``."""
    for op in ops:
        count(w.change_counter(op.change))
        if len(samples) < limit:
            samples.append(change_sample(namespace, op))


def change_sample(namespace: str, op: Op) -> dict:
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


def _equal(a: Any, b: Any) -> bool:
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


__all__ = ["Contention", "Op", "UndoLog", "change_sample", "mutations", "tally",
           "transact_ops"]
