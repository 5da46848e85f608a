"""Test-only jobs that write back: ``--job_module tests.support.jobs_writes``."""
from __future__ import annotations

import itertools
import os

from google.cloud import datastore

from jobs.migrations import DeleteEntities
from pipeline import UNCHANGED, Context, Delete, JobSpec, Params, Put, Query, register

#: The Datastore project the concurrent writer uses (the tests' own).
PROJECT_ENV = "TEST_WRITES_PROJECT"


def _concurrent_client(namespace: str) -> datastore.Client:
    return datastore.Client(project=os.environ.get(PROJECT_ENV, "test-project"),
                            namespace=namespace or None)


@register
class TagConcurrently(JobSpec):
    """Appends "m" to each Item's ``log`` list (idempotent: once). For entities whose ``n`` is a
    multiple of ``every``, a concurrent writer appends "c" to the same list, outside the job's
    transaction: ``when=transaction`` between the writer's lookup and its commit (migrate is
    called inside the transaction), ``when=read`` between the read and the write (for blind)."""

    name = "tag_concurrently"
    parameters = {"every": "interfere on entities whose n is a multiple of this (default 5)",
                  "when": "transaction (default) or read"}

    def query(self, params: Params) -> Query:
        self.every = params.integer("every", 5)
        self.when = params.get("when", "transaction")
        return Query(kind="Item", keys_only=False)

    def migrate(self, ctx: Context, entity):
        log = list(entity.get("log") or [])
        if "m" in log:
            return UNCHANGED
        wants = (ctx.transaction if self.when == "transaction" else not ctx.transaction)
        if wants and entity.get("n", 1) % self.every == 0 and "c" not in log:
            c = _concurrent_client(ctx.namespace)
            current = c.get(entity.key)
            current["log"] = list(current.get("log") or []) + ["c"]
            c.put(current)  # commits before the job's own transaction does: contention
        entity["log"] = log + ["m"]
        return entity


@register
class IndexItems(JobSpec):
    """Free mutations: for each Item, an ``ItemIndex`` entity named after it in namespace
    ``into`` (default: the Item's own), holding its category; with ``drop=true`` it deletes
    that index entity instead; with ``report=true`` it also yields a record per item."""

    name = "index_items"
    writes = True
    parameters = {"into": "the namespace of the index entities (default: the item's)",
                  "drop": "true: delete the index entities instead (default false)",
                  "report": "true: also yield a record {indexed: name} per item"}

    def query(self, params: Params) -> Query:
        self.into = params.get("into")
        self.drop = params.flag("drop", False)
        self.report = params.flag("report", False)
        return Query(kind="Item", keys_only=False)

    def next(self, ctx: Context, entity):
        name = "-".join(str(x) for x in entity.key.flat_path)
        key = ctx.key("ItemIndex", name, namespace=self.into)
        if self.report:
            yield {"indexed": name}
        if self.drop:
            yield Delete(key)
            return
        index = datastore.Entity(key)
        index["category"] = entity.get("category")
        index["n"] = entity.get("n")
        yield Put(index)


@register
class BadMutations(JobSpec):
    """Free mutations that cannot be written, by ``n % 5``: 0 a Put of a non-entity, 1 an
    incomplete key, 2 a Delete of a string, 3 an entity over 1 MiB, 4 a good Put."""

    name = "bad_mutations"
    writes = True

    def query(self, params: Params) -> Query:
        return Query(kind="Item", keys_only=False)

    def next(self, ctx: Context, entity):
        case = entity["n"] % 5
        if case == 0:
            yield Put({"not": "an entity"})
        elif case == 1:
            yield Put(datastore.Entity(ctx.key("Derived")))
        elif case == 2:
            yield Delete("Derived/1")
        elif case == 3:
            big = datastore.Entity(ctx.key("Derived", f"big-{entity['n']}"),
                                   exclude_from_indexes=("blob",))
            big["blob"] = b"x" * 1_100_000
            yield Put(big)
        else:
            good = datastore.Entity(ctx.key("Derived", f"good-{entity['n']}"))
            good["n"] = entity["n"]
            yield Put(good)


@register
class Inflate(JobSpec):
    """A migration that makes entities whose ``n`` is a multiple of 10 larger than 1 MiB."""

    name = "inflate"

    def query(self, params: Params) -> Query:
        return Query(kind="Item", keys_only=False)

    def migrate(self, ctx: Context, entity):
        if entity["n"] % 10:
            if entity.get("touched"):
                return UNCHANGED
            entity["touched"] = True
            return entity
        entity["blob"] = b"x" * 1_100_000
        entity.exclude_from_indexes.add("blob")
        return entity


@register
class MigrateKeysOnly(JobSpec):
    """A migration over a keys-only query: refused at launch."""

    name = "migrate_keys_only"

    def query(self, params: Params) -> Query:
        return Query(kind="Item")

    def migrate(self, ctx: Context, entity):
        return entity


@register
class ReturnsOtherKey(JobSpec):
    """A migration that returns another entity (not allowed: a dead letter per entity)."""

    name = "returns_other_key"

    def query(self, params: Params) -> Query:
        return Query(kind="Item", keys_only=False)

    def migrate(self, ctx: Context, entity):
        return datastore.Entity(ctx.key("Other", "x"))


@register
class EraseWhileWritten(DeleteEntities):
    """``delete_entities`` (same parameters) while someone else writes: once every namespace
    completed (``job_completed``, after every delete committed), an entity of kind ``Late`` is
    put into namespace ``late`` (a parameter; default t1), as a writer unaware of the erase
    would: what the erase's final check must find."""

    name = "erase_while_written"
    parameters = {**DeleteEntities.parameters, "late": "the namespace written into (default t1)"}

    def query(self, params: Params) -> Query:
        self.late = params.get("late", "t1")
        return super().query(params)

    def job_completed(self, ctx) -> None:
        c = _concurrent_client(self.late)
        late = datastore.Entity(c.key("Late", "written-during-the-erase"))
        late["n"] = 1
        c.put(late)


_SEQ = itertools.count(1)


@register
class PutLast(JobSpec):
    """Free mutations that all put one entity, ``Last``/``last``, holding how many Items this
    process has handed over so far: the put that stays must be the last one made (two
    commits of one key are never in flight at once)."""

    name = "put_last"
    writes = True

    def query(self, params: Params) -> Query:
        return Query(kind="Item", keys_only=False)

    def next(self, ctx: Context, entity):
        last = datastore.Entity(ctx.key("Last", "last", namespace=""))
        last["seen"] = next(_SEQ)
        yield Put(last)
