"""Commits in flight: a worker's next batch is read and migrated while Datastore commits the
last one (a blind commit, or a transaction's after its lookup and decision; on one worker
thread the two used to take turns).

- At most ``limit`` commits at once per writer; a commit is sent from a small shared pool,
  only its Datastore call runs there (with its retries): what it wrote is counted, sampled and
  made into dead letters on the writer's own thread, when it is settled (Beam's metrics and
  the slice's counters belong to that thread).
- Two commits in flight never share an entity group (``group_id``): a batch (or a lookup, or a
  transaction) over a group still in flight waits for that commit first, so the last mutation
  of a key is the last one applied, an undo record's ``before`` is what was really there, and
  the worker's own transactions do not contend.
- A slice settles all its commits before it checkpoints (``Writer.finish``); a commit that
  failed fails the slice, after every other commit of it has finished (nothing of a failed
  slice is still being written when it is read again).
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import dataclasses
from typing import Any, Callable, Iterable, Optional

from pipeline.core.pools import shared_pool

#: Commits in flight per writer (one more batch is made meanwhile).
COMMITS_IN_FLIGHT = 2
_POOL_THREADS = 16


def group_id(key: Any) -> tuple:
    """What two commits in flight never share: a key's entity group (its root) in its
    namespace. Two writes of one key must land in the order made, and two transactions on one
    group contend (the emulator aborts one)."""
    return key.namespace or "", tuple(key.flat_path[:2])


@dataclasses.dataclass
class Sent:
    """One commit in flight: what the writer needs to settle it."""

    namespace: str
    batch: list
    undo_path: Optional[str]
    keys: frozenset
    future: cf.Future
    held_ms: list  # milliseconds the commit's retries were held back (its own thread's count)


class Commits:
    """A writer's commits in flight (see the module docstring); ``settle`` is the writer's."""

    def __init__(self, settle: Callable[[Sent], None], limit: int = COMMITS_IN_FLIGHT):
        self.settle_one, self.limit = settle, limit
        self.sent: collections.deque = collections.deque()
        self.keys: set = set()

    def __len__(self) -> int:
        return len(self.sent)

    def send(self, namespace: str, batch: list, keys: Iterable, undo_path: Optional[str],
             call: Callable[[list], None]) -> None:
        """``call(held_ms)`` sent for ``batch`` (keys: its ``group_id``s, disjoint from those in
        flight: ``clear`` first); the oldest commits are settled while more than ``limit``
        are in flight."""
        keys = frozenset(keys)
        held: list = []
        future = (shared_pool("commit", _POOL_THREADS).submit(call, held) if self.limit > 0
                  else _done(call, held))
        sent = Sent(namespace, batch, undo_path, keys, future, held)
        self.sent.append(sent)
        self.keys |= keys
        while len(self.sent) > max(self.limit, 0):
            self._settle_oldest()

    def clear(self, keys: Optional[Iterable] = None) -> None:
        """Settle the commits in flight, oldest first: all of them, or (``keys``: ``group_id``s)
        until none of these keys is in flight."""
        if keys is None:
            while self.sent:
                self._settle_oldest()
            return
        wanted = set(keys)
        while self.sent and not self.keys.isdisjoint(wanted):
            self._settle_oldest()

    def abandon(self) -> None:
        """After a failure: wait for every commit in flight to end, settling none (the slice
        fails and is read again; nothing of it may still be writing then)."""
        while self.sent:
            sent = self.sent.popleft()
            try:
                sent.future.result()
            except BaseException:  # the slice fails already; its retry re-applies it
                pass
        self.keys.clear()

    def _settle_oldest(self) -> None:
        sent = self.sent.popleft()
        self.keys -= sent.keys
        try:
            self.settle_one(sent)
        except BaseException:
            self.abandon()
            raise


def _done(call: Callable[[list], None], held: list) -> cf.Future:
    """``call`` made here (no commit in flight: ``limit`` 0), as a finished future."""
    future: cf.Future = cf.Future()
    try:
        future.set_result(call(held))
    except BaseException as e:
        future.set_exception(e)
    return future
