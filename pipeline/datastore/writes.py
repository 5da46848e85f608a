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

The requests are built as raw protobufs (``pipeline.datastore.encode``) and the answers read
from the raw response (``pipeline.datastore.decode``), through the client's own API object
(its retry switched off, as for every call): the client's ``Batch.put`` and ``get_multi`` go
through proto-plus for each entity, which was the largest cost of a blind write (18 % of a
run's samples). The same messages are sent (``tests/unit/test_encode.py``).
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Sequence

from google.api_core import exceptions as gexc
from google.cloud import datastore
from google.cloud.datastore_v1.types import datastore as ds_types
from google.cloud.datastore_v1.types import entity as entity_types

from pipeline.core.retry import RetryPolicy
from pipeline.core.writes import Contention
from pipeline.datastore import retry
from pipeline.datastore.decode import entity_from_pb
from pipeline.datastore.encode import entity_into, key_into

log = logging.getLogger(__name__)

#: Keys per Lookup call (Datastore's limit).
LOOKUP_KEYS = 1000
#: Lookups of the keys Datastore deferred, at most (the client's own bound).
LOOKUP_ROUNDS = 128

_CommitRequest, _LookupRequest = ds_types.CommitRequest, ds_types.LookupRequest
_RawEntity = entity_types.Entity.pb()
_RawKey = entity_types.Key.pb()
_NON_TRANSACTIONAL = int(ds_types.CommitRequest.Mode.NON_TRANSACTIONAL)
_TRANSACTIONAL = int(ds_types.CommitRequest.Mode.TRANSACTIONAL)


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


def _addressed(c: datastore.Client, request):
    """``request`` (raw) addressed to the client's project and database."""
    request.project_id = c.project
    if c.database:
        request.database_id = c.database
    return request


def _same_target(c: datastore.Client, project: str, database: str, what: str) -> None:
    """Refuse to send a key of another project or database (``bind_key`` makes them the
    client's): nothing is written where the run was not pointed."""
    if project != c.project or (database or None) != (c.database or None):
        raise ValueError(f"{what} of project {project!r}, database {database or None!r}: this "
                         f"client writes to project {c.project!r}, database "
                         f"{c.database or None!r}")


def _lookup_once(c: datastore.Client, keys: Sequence, transaction: Optional[bytes],
                 policy: RetryPolicy, began: Optional[list] = None) -> tuple:
    """(the entities of ``keys`` that exist, the transaction) in one call (and one per round
    Datastore defers keys), decoded from the raw response. ``began`` (without
    ``transaction``): the first call begins a read-write transaction
    (``read_options.new_transaction``), whose id the response gives, is appended to ``began``
    at once, and the later rounds read in."""
    pending = []
    for key in keys:
        _same_target(c, key.project, key.database, "a key")
        pb = _RawKey()
        key_into(pb, key)
        pending.append(pb)
    found = []
    for _ in range(LOOKUP_ROUNDS):
        request = _addressed(c, _LookupRequest.pb()())
        request.keys.extend(pending)
        beginning = began is not None and transaction is None
        if beginning:
            request.read_options.new_transaction.read_write.SetInParent()
        elif transaction is not None:
            request.read_options.transaction = transaction
        answer = ds_types.LookupResponse.pb(c._datastore_api.lookup(
            request=_LookupRequest.wrap(request), **retry.call_options(policy)))
        if beginning:
            if not answer.transaction:
                raise gexc.FailedPrecondition(
                    "Datastore began no transaction with the lookup (new_transaction)")
            transaction = answer.transaction
            began.append(transaction)
        found.extend(entity_from_pb(r.entity) for r in answer.found)
        pending = list(answer.deferred)
        if not pending:
            return found, transaction
    raise gexc.DeadlineExceeded(f"Datastore deferred {len(pending)} keys {LOOKUP_ROUNDS} times")


def lookup(c: datastore.Client, keys: Sequence, policy: RetryPolicy, what: str,
           transaction: Optional[bytes] = None, where: str = "Datastore") -> dict:
    """key -> its current entity (keys without one are absent), each found entity under the
    key it was asked for (matched by namespace and path: an endpoint may answer without the
    database id)."""
    return _lookup(c, keys, policy, what, transaction, where)[0]


def begin_with_lookup(c: datastore.Client, keys: Sequence, policy: RetryPolicy, what: str,
                      began: list) -> dict:
    """key -> its current entity in a new read-write transaction, whose id is appended to
    ``began`` as soon as Datastore gives it (so a failure after it can roll it back): the
    lookup begins the transaction itself, one call instead of ``begin`` then ``lookup`` (a
    round trip fewer per transaction). Without keys, ``begin`` alone. No retry of its own:
    the transaction is retried whole."""
    if not keys:
        began.append(begin(c, policy))
        return {}
    return _lookup(c, keys, policy, what, None, "Datastore", began)[0]


def _lookup(c: datastore.Client, keys: Sequence, policy: RetryPolicy, what: str,
            transaction: Optional[bytes], where: str, began: Optional[list] = None) -> tuple:
    """(key -> entity, the transaction) over chunks of ``LOOKUP_KEYS``; ``began``: the first
    chunk begins a transaction, its id appended there as soon as it is known."""
    found: dict = {}
    in_transaction = transaction is not None or began is not None
    for i in range(0, len(keys), LOOKUP_KEYS):
        chunk = list(keys[i:i + LOOKUP_KEYS])

        def get(chunk=chunk):
            return _lookup_once(c, chunk, transaction, policy, began)

        got, transaction = get() if in_transaction else retry.call(get, what, policy,
                                                                   where=where)
        asked = {(k.namespace, k.flat_path): k for k in chunk}
        for e in got:
            found[asked.get((e.key.namespace, e.key.flat_path), e.key)] = e
    return found, transaction


def _partial(key) -> bool:
    """``key.is_partial`` from the flat path (``Key.is_partial`` deep-copies the path)."""
    return len(key.flat_path) % 2 == 1


def _commit_request(c: datastore.Client, puts: Sequence, deletes: Sequence,
                    transaction: Optional[bytes]):
    """The commit of ``puts`` (entities, or raw ``Entity`` messages made already, copied as
    they are) and ``deletes`` (complete keys) as upserts and deletes, as ``Batch`` makes it."""
    request = _addressed(c, _CommitRequest.pb()())
    if transaction is None:
        request.mode = _NON_TRANSACTIONAL
    else:
        request.mode = _TRANSACTIONAL
        request.transaction = transaction
    mutations = request.mutations
    for entity in puts:
        if isinstance(entity, _RawEntity):
            partition = entity.key.partition_id
            _same_target(c, partition.project_id, partition.database_id, "an entity")
            mutations.add().upsert.CopyFrom(entity)
            continue
        key = getattr(entity, "key", None)
        if key is None or _partial(key):
            raise ValueError("an entity to write must have a complete key")
        _same_target(c, key.project, key.database, "an entity")
        entity_into(mutations.add().upsert, entity)
    for key in deletes:
        if _partial(key):
            raise ValueError("a key to delete must be complete")
        _same_target(c, key.project, key.database, "a key to delete")
        key_into(mutations.add().delete, key)
    return _CommitRequest.wrap(request)


def commit(c: datastore.Client, puts: Sequence, deletes: Sequence, policy: RetryPolicy,
           transaction: Optional[bytes] = None) -> None:
    """One commit (no retry of its own): non-transactional, or of ``transaction``."""
    c._datastore_api.commit(request=_commit_request(c, puts, deletes, transaction),
                            **retry.call_options(policy))


def commit_blind(c: datastore.Client, puts: Sequence, deletes: Sequence, policy: RetryPolicy,
                 what: str, where: str = "Datastore",
                 on_retry: Optional[Callable[[Exception], None]] = None) -> None:
    """One non-transactional commit of ``puts`` (entities, or their raw ``Entity`` messages)
    and ``deletes`` (keys)."""
    if not puts and not deletes:
        return
    request = _commit_request(c, puts, deletes, None)  # made once, sent again on a retry
    retry.call(lambda: c._datastore_api.commit(request=request, **retry.call_options(policy)),
               what, policy, on_retry, where)


def begin(c: datastore.Client, policy: RetryPolicy) -> bytes:
    """A new read-write transaction's id."""
    request = {"project_id": c.project, "transaction_options": ds_types.TransactionOptions()}
    if c.database:
        request["database_id"] = c.database
    return c._datastore_api.begin_transaction(request=request,
                                              **retry.call_options(policy)).transaction


def rollback(c: datastore.Client, transaction: bytes, policy: RetryPolicy) -> None:
    request = {"project_id": c.project, "transaction": transaction}
    if c.database:
        request["database_id"] = c.database
    c._datastore_api.rollback(request=request, **retry.call_options(policy))


def roll_back_quietly(c: datastore.Client, began: list, policy: RetryPolicy) -> None:
    """Roll back the transaction in ``began`` (if one was begun): a courtesy that releases its
    locks now; a failure is ignored, the transaction expires anyway."""
    if began:
        try:
            rollback(c, began[0], policy)
        except Exception:
            pass


def transact(c: datastore.Client, keys: Sequence, decide: Callable[[dict], tuple],
             policy: RetryPolicy, what: str, where: str = "Datastore",
             on_retry: Optional[Callable[[Exception], None]] = None):
    """In one transaction: look ``keys`` up, call ``decide(current)`` (key -> entity) for
    ``(puts, deletes, result)``, commit; returns ``result``. ``decide`` runs again when a
    transient error makes the whole transaction run again; contention raises ``Contention``."""

    def attempt():
        began: list = []  # the transaction, once Datastore has begun it
        committing = False
        try:
            current = begin_with_lookup(c, keys, policy, what, began)
            puts, deletes, result = decide(current)
            committing = True  # a commit that fails has ended the transaction
            commit(c, puts, deletes, policy, transaction=began[0])
            return result
        except BaseException as e:
            if not committing:
                roll_back_quietly(c, began, policy)
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
