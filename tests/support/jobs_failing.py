"""Test-only jobs: load with ``--job_module tests.support.jobs_failing``.

They live in an importable module (not in a test file) so that worker
processes can unpickle them.
"""
from __future__ import annotations

import datetime as dt
import time
from typing import Callable, Optional

from pipeline import Context, JobSpec, Params, Query, register
from pipeline.errors import UsageError


@register
class FailOnEntity(JobSpec):
    """Counts keys; raises on the key whose id or name is the ``fail_on`` parameter."""

    name = "fail_on_entity"
    parameters = {"fail_on": "id or name of the key to fail on", "kind": "kind (default Item)"}

    def query(self, params: Params) -> Query:
        return Query(kind=params.get("kind", "Item"))

    def next(self, ctx: Context, key) -> None:
        ctx.counters.inc("keys")
        if str(key.id_or_name) == ctx.params.get("fail_on"):
            raise ValueError(f"cannot handle {key.id_or_name!r}")


@register
class TwoInequalities(JobSpec):
    """A query with inequality filters on two properties (n and score): refused."""

    name = "two_inequalities"

    def query(self, params: Params) -> Query:
        return Query(kind="Item", keys_only=False,
                     filters=[("n", ">=", 10), ("score", "<", 50.0)])

    def next(self, ctx: Context, entity) -> None:
        ctx.counters.inc("entities")


@register
class CategoryCreatedBetween(JobSpec):
    """An equality (category) plus a range (created): needs a composite index in production."""

    name = "category_created_between"
    parameters = {"category": "category to select (default books)",
                  "kind": "kind (default Item; A|B for several)"}

    def query(self, params: Params) -> Query:
        midnight = dt.time(tzinfo=dt.timezone.utc)
        return Query(kind=params.kinds("kind", "Item"), keys_only=False,
                     filters=[("category", "=", params.get("category", "books")),
                              ("created", ">=", dt.datetime.combine(dt.date(2026, 11, 24), midnight)),
                              ("created", "<", dt.datetime.combine(dt.date(2026, 11, 27), midnight))])

    def next(self, ctx: Context, entity):
        ctx.counters.inc("entities")
        yield {"key": list(entity.key.flat_path), "namespace": ctx.namespace}


#: Called by the probe jobs for every item, in the worker (in-process runners only):
#: the dynamic-split test uses it to pause a read while it asks for a split.
PROBE_HOOK: Optional[Callable[[Context, object], None]] = None


def _probe(ctx: Context, item) -> None:
    hook = PROBE_HOOK
    if hook is not None:
        hook(ctx, item)


@register
class ProbeExportKeys(JobSpec):
    """export_keys with a test hook: one record per key, with the range it was read in."""

    name = "probe_export_keys"
    parameters = {"kind": "kind (default Item)"}

    def query(self, params: Params) -> Query:
        return Query(kind=params.get("kind", "Item"))

    def next(self, ctx: Context, key):
        _probe(ctx, key)
        yield {"namespace": ctx.namespace, "key": list(key.flat_path), "range": ctx.range}


@register
class ProbeCreatedBetween(JobSpec):
    """created_between with a test hook: one record per entity whose created is in [from, to)."""

    name = "probe_created_between"
    parameters = {"from": "first day, YYYY-MM-DD", "to": "day after the last, YYYY-MM-DD"}

    def query(self, params: Params) -> Query:
        midnight = dt.time(tzinfo=dt.timezone.utc)
        start = params.date("from")
        end = params.date("to")
        return Query(kind="Item", keys_only=False,
                     filters=[("created", ">=", dt.datetime.combine(start, midnight)),
                              ("created", "<", dt.datetime.combine(end, midnight))])

    def next(self, ctx: Context, entity):
        _probe(ctx, entity)
        yield {"namespace": ctx.namespace, "key": list(entity.key.flat_path), "range": ctx.range}


@register
class UnsupportedOperator(JobSpec):
    """A query with a filter operator Datastore has but the mapper does not split on (!=)."""

    name = "unsupported_operator"

    def query(self, params: Params) -> Query:
        return Query(kind="Item", filters=[("n", "!=", 3)])

    def next(self, ctx: Context, key) -> None:
        ctx.counters.inc("keys")


#: The values ``bad_record`` can yield for an entity: each cannot be written as a JSON line.
BAD_VALUES: dict[str, Callable[[], object]] = {
    "object": object,
    "mixed_set": lambda: {1, "one"},
    "nan": lambda: float("nan"),
}


@register
class BadRecord(JobSpec):
    """Yields, for the key named by ``on``, a record whose ``value`` JSON cannot hold; every
    other key gets a plain record."""

    name = "bad_record"
    parameters = {"value": f"what to put in the bad record: {', '.join(BAD_VALUES)}",
                  "on": "id or name of the key that gets the bad record"}

    def query(self, params: Params) -> Query:
        if params.get("value") not in BAD_VALUES:
            raise UsageError(f"job parameter value must be one of {', '.join(BAD_VALUES)}")
        return Query(kind="Item")

    def next(self, ctx: Context, key):
        if str(key.id_or_name) == ctx.params.get("on"):
            yield {"key": list(key.flat_path), "value": BAD_VALUES[ctx.params.get("value")]()}
        else:
            yield {"key": list(key.flat_path)}


@register
class SlowKeys(JobSpec):
    """Counts keys, sleeping ``sleep`` seconds (default 0.2) on each: slow enough to interrupt."""

    name = "slow_keys"
    parameters = {"sleep": "seconds per key (default 0.2)"}

    def query(self, params: Params) -> Query:
        return Query(kind="Item")

    def next(self, ctx: Context, key):
        time.sleep(float(ctx.params.get("sleep", "0.2")))
        ctx.counters.inc("keys")
        yield {"key": list(key.flat_path)}


@register
class QueryFails(JobSpec):
    """A job whose query() raises (a bug in the job, found at launch)."""

    name = "query_fails"

    def query(self, params: Params) -> Query:
        settings: dict = {}
        return Query(kind=settings["kind"])

    def next(self, ctx: Context, key) -> None:
        ctx.counters.inc("keys")


@register
class ProbeRename(JobSpec):
    """rename_property category -> genre with the test hook (on the version read): a migration
    the dynamic-split test splits while it runs."""

    name = "probe_rename"

    def query(self, params: Params) -> Query:
        return Query(kind="Item", keys_only=False)

    def migrate(self, ctx: Context, entity):
        if not ctx.transaction:
            _probe(ctx, entity)
        if "category" not in entity:
            return None
        entity["genre"] = entity.pop("category")
        return entity
