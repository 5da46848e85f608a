"""Writing to Datastore: lookups, blind commits and transactions, through the one retry path.

- ``lookup``: the current version of keys (at most 1,000 per call), in a transaction or not.
- ``bind_key``: a key read (or recorded) bound to the client's project and database.
- ``commit_blind``: puts and deletes in one non-transactional commit; retried on transient
  errors (puts of complete keys and deletes are idempotent: a retry never duplicates or loses
  one).
- ``transact``: a transaction that looks the keys up, lets the caller decide the mutations from
  the current versions (and write its undo records first), and commits. Contention (ABORTED,
  or the emulator's UNKNOWN "too much contention") is raised as ``Contention`` for the caller to
  retry or halve (``pipeline.core.writes.retry_then_halve``); other transient errors retry the
  whole transaction, which is safe because the caller re-decides from a fresh lookup
  (``migrate`` is idempotent).

Reads in a transaction see the current data, never ``--read_time``'s snapshot: a migration
reads a snapshot but writes over what is there now.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Sequence

from google.api_core import exceptions as gexc
from google.cloud import datastore

from pipeline.core.retry import RetryPolicy
from pipeline.core.writes import Contention
from pipeline.datastore import retry

log = logging.getLogger(__name__)

#: Keys per Lookup call (Datastore's limit).
LOOKUP_KEYS = 1000


def is_contention(err: BaseException) -> bool:
    if isinstance(err, (gexc.Aborted, gexc.Conflict)):
        return True
    text = str(getattr(err, "message", "") or err).lower()
    return isinstance(err, (gexc.Unknown, gexc.GoogleAPICallError)) and "contention" in text


def bind_key(c: datastore.Client, key: Any) -> Any:
    """``key`` in ``c``'s project and database: a commit may not mix databases, the emulator
    answers without the database id, and a backup may be restored into another project."""
    if key.project == c.project and getattr(key, "database", None) == \
            getattr(c, "database", None):
        return key
    return c.key(*key.flat_path, namespace=key.namespace)


def bind(c: datastore.Client, entity: Any) -> Any:
    """``entity`` with its key bound (``bind_key``), in place."""
    key = bind_key(c, entity.key)
    if key is not entity.key:
        entity.key = key
    return entity


def lookup(c: datastore.Client, keys: Sequence, policy: RetryPolicy, what: str,
           transaction=None, where: str = "Datastore") -> dict:
    """key -> its current entity (keys without one are absent)."""
    found: dict = {}
    for i in range(0, len(keys), LOOKUP_KEYS):
        chunk = list(keys[i:i + LOOKUP_KEYS])

        def get(chunk=chunk):
            return c.get_multi(chunk, transaction=transaction, **retry.call_options(policy))

        got = get() if transaction is not None else retry.call(get, what, policy, where=where)
        for e in got:
            found[e.key] = e
    return found


def commit_blind(c: datastore.Client, puts: Sequence, deletes: Sequence, policy: RetryPolicy,
                 what: str, where: str = "Datastore",
                 on_retry: Optional[Callable[[Exception], None]] = None) -> None:
    """One non-transactional commit of ``puts`` (entities) and ``deletes`` (keys)."""
    if not puts and not deletes:
        return

    def commit():
        batch = c.batch()
        batch.begin()
        for entity in puts:
            batch.put(entity)
        for key in deletes:
            batch.delete(key)
        batch.commit(**retry.call_options(policy))

    retry.call(commit, what, policy, on_retry, where)


def transact(c: datastore.Client, keys: Sequence, decide: Callable[[dict], tuple],
             policy: RetryPolicy, what: str, where: str = "Datastore",
             on_retry: Optional[Callable[[Exception], None]] = None):
    """In one transaction: look ``keys`` up, call ``decide(current)`` (key -> entity) for
    ``(puts, deletes, result)``, commit; returns ``result``. ``decide`` runs again when a
    transient error makes the whole transaction run again; contention raises ``Contention``."""

    def attempt():
        txn = c.transaction()
        txn.begin(**retry.call_options(policy))
        try:
            current = lookup(c, keys, policy, what, transaction=txn)
            puts, deletes, result = decide(current)
            for entity in puts:
                txn.put(entity)
            for key in deletes:
                txn.delete(key)
            txn.commit(**retry.call_options(policy))
            return result
        except BaseException as e:
            try:
                if txn._status == txn._IN_PROGRESS:
                    txn.rollback(**retry.call_options(policy))
            except Exception:  # the rollback is a courtesy: the transaction expires anyway
                pass
            if isinstance(e, gexc.GoogleAPICallError) and is_contention(e):
                raise Contention(str(getattr(e, "message", "") or e)) from e
            raise

    return retry.call(attempt, what, policy, on_retry, where)


class KeyMaker:
    """``ctx.key`` and ``ctx.allocate_ids``: keys in the run's project and database."""

    def __init__(self, c: datastore.Client, policy: RetryPolicy):
        self.c, self.policy = c, policy

    def key(self, path: tuple, namespace: str):
        return self.c.key(*path, namespace=namespace or None)

    def allocate(self, kind: str, n: int, namespace: str, parent=None) -> list:
        base = (self.c.key(*parent.flat_path, kind, namespace=namespace or None) if parent
                is not None else self.c.key(kind, namespace=namespace or None))
        return retry.call(lambda: self.c.allocate_ids(base, n, **retry.call_options(self.policy)),
                          f"allocating {n} ids of {kind}", self.policy)
