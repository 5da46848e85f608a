"""Jobs used only by the tests; loaded with ``--job_module tests.support.jobs_for_tests``.

They live in an importable module (not in a test file) so that worker processes
can unpickle them.
"""
from __future__ import annotations

import datetime as dt

from pipeline import Context, JobSpec, Params, Query, register
from pipeline.errors import UsageError
from tests.support.bad_rows import bq_bad


def _timestamp(params: Params, name: str):
    raw = params.get(name)
    if raw is None:
        return None
    try:
        t = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise UsageError(f"test_range_probe: {name}={raw!r} is not an ISO timestamp") from None
    if t.tzinfo is None:
        raise UsageError(f"test_range_probe: {name}={raw!r} needs a time zone")
    return t.astimezone(dt.timezone.utc)


@register
class RangeProbe(JobSpec):
    """Full entities with a timestamp inequality on one property; one record per entity
    saying which initial range read it. Any of ge/gt/lt/le may be left out (open bound)."""

    name = "test_range_probe"
    parameters = {"kind": "kind (default Event)", "property": "property (default created)",
                  "ge": "ISO timestamp: property >= ge", "gt": "property > gt",
                  "lt": "property < lt", "le": "property <= le"}

    def query(self, params: Params) -> Query:
        self.prop = params.get("property", "created")
        filters = []
        for op_name, op in (("ge", ">="), ("gt", ">"), ("lt", "<"), ("le", "<=")):
            value = _timestamp(params, op_name)
            if value is not None:
                filters.append((self.prop, op, value))
        return Query(kind=params.kinds("kind", "Event"), keys_only=False, filters=filters)

    def next(self, ctx: Context, entity):
        ctx.counters.inc("entities")
        yield {"namespace": ctx.namespace, "key": list(entity.key.flat_path),
               "range": ctx.range_id, "value": entity.get(self.prop)}


@register
class CsvKeys(JobSpec):
    """Keys as CSV lines (kind,id-or-name,...): a job's own encoder and file suffix."""

    name = "csv_keys"
    file_suffix = ".csv"

    def query(self, params: Params) -> Query:
        return Query(kind="Item")

    def next(self, ctx: Context, key):
        yield list(key.flat_path)

    @staticmethod
    def encode(record) -> str:
        return ",".join(map(str, record))


@register
class BigQueryRows(JobSpec):
    """A declared BigQuery schema; two records per key (copy 0 and 1). With bad_every=N, about one
    key in N gets a non-integer in the INTEGER column n; with split=true, copy 0 goes to table
    `first` and copy 1 to `second` (a per-record table choice)."""

    name = "test_bq_rows"
    parameters = {"bad_every": "about 1 in N keys gets a bad value (default 0: none)",
                  "split": "true: copy 0 to table first, copy 1 to table second"}

    def query(self, params: Params) -> Query:
        self.bad_every = params.integer("bad_every", 0)
        self.split = params.flag("split", False)
        return Query(kind="Item")

    def bigquery_schema(self, params: Params) -> list:
        return [{"name": "namespace", "type": "STRING", "mode": "NULLABLE"},
                {"name": "key", "type": "STRING", "mode": "REPEATED"},
                {"name": "copy", "type": "INTEGER", "mode": "NULLABLE"},
                {"name": "n", "type": "INTEGER", "mode": "NULLABLE"},
                {"name": "seen", "type": "TIMESTAMP", "mode": "NULLABLE"}]

    def bigquery_table(self, namespace: str, record: dict):
        if not self.split:
            return None
        return "first" if record["copy"] == 0 else "second"

    def next(self, ctx: Context, key):
        bad = bq_bad(key.flat_path, self.bad_every)
        for copy in (0, 1):
            yield {"namespace": ctx.namespace, "key": [str(p) for p in key.flat_path],
                   "copy": copy, "n": "not-a-number" if bad and copy == 1 else len(key.flat_path),
                   "seen": dt.datetime(2026, 11, 28, 12, 0, tzinfo=dt.timezone.utc)}
