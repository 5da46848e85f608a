"""Test-only jobs for faults and failures: load with ``--job_module tests.support.jobs_faults``.

Which entities fail is decided by the key alone (``fails``), so a test computes the same set
from the seeded keys without running the job.
"""
from __future__ import annotations

import os
import time
import zlib

from pipeline import Context, JobSpec, Params, Query, register


def fails(flat_path, every: int) -> bool:
    """Whether the entity with this key is one of every ``every`` that the jobs fail on."""
    return every > 0 and zlib.crc32(repr(tuple(flat_path)).encode("utf-8")) % every == 0


@register
class FailSome(JobSpec):
    """One record per key, like export_keys; raises on one key in ``every`` (by a hash of the
    key), and sleeps ``sleep_ms`` per key (a run slow enough to interrupt)."""

    name = "fail_some"
    parameters = {"every": "fail on one key in this many (default 0: never)",
                  "sleep_ms": "milliseconds to sleep per key (default 0)"}

    def query(self, params: Params) -> Query:
        self.every = params.integer("every", 0)
        self.sleep = params.integer("sleep_ms", 0) / 1000.0
        return Query(kind="Item")

    def next(self, ctx: Context, key):
        if self.sleep:
            time.sleep(self.sleep)
        ctx.counters.inc("keys")
        if fails(key.flat_path, self.every):
            raise ValueError(f"cannot handle {key.id_or_name!r}")
        yield {"namespace": ctx.namespace, "key": list(key.flat_path)}


@register
class BadRecords(JobSpec):
    """One record per key; for one key in ``every`` the record holds a value JSON cannot hold
    (``kind``: object, complex, nan, circular, mixed_set)."""

    name = "bad_records"
    parameters = {"every": "one key in this many gets a bad record (default 3)",
                  "bad": "object, complex, nan, circular or mixed_set (default object)"}

    def query(self, params: Params) -> Query:
        self.every = params.integer("every", 3)
        self.bad = params.text("bad", "object")
        return Query(kind="Item")

    def _bad_value(self):
        if self.bad == "complex":
            return 1 + 2j
        if self.bad == "nan":
            return float("nan")
        if self.bad == "circular":
            loop: list = []
            loop.append(loop)
            return loop
        if self.bad == "mixed_set":
            return {1, "a"}
        return object()

    def next(self, ctx: Context, key):
        record = {"namespace": ctx.namespace, "key": list(key.flat_path)}
        if fails(key.flat_path, self.every):
            yield {"namespace": ctx.namespace, "key": list(key.flat_path), "first": 1}
            record["value"] = self._bad_value()  # the entity's second record cannot be written
        yield record


#: The namespace whose namespace_completed hook raises (set in the environment by a test, so
#: the job's parameters stay those of the run it resumes).
FAIL_NAMESPACE_ENV = "MAPPER_TEST_FAIL_NAMESPACE"
FAIL_JOB_COMPLETED_ENV = "MAPPER_TEST_FAIL_JOB_COMPLETED"


@register
class FailLate(JobSpec):
    """export_keys whose hooks fail late, after reading: ``namespace_completed`` for the
    namespace named by $MAPPER_TEST_FAIL_NAMESPACE, ``job_completed`` when
    $MAPPER_TEST_FAIL_JOB_COMPLETED is set. Counts ``keys``."""

    name = "fail_late"
    parameters = {"tag": "any text (default none): a parameter a resumed run must repeat"}

    def query(self, params: Params) -> Query:
        params.get("tag")
        return Query(kind="Item")

    def next(self, ctx: Context, key):
        ctx.counters.inc("keys")
        yield {"namespace": ctx.namespace, "key": list(key.flat_path)}

    def namespace_completed(self, ctx) -> None:
        if os.environ.get(FAIL_NAMESPACE_ENV) == (ctx.namespace or "__default__"):
            raise RuntimeError(f"namespace {ctx.namespace!r} failed on purpose")

    def job_completed(self, ctx) -> None:
        if os.environ.get(FAIL_JOB_COMPLETED_ENV):
            raise RuntimeError("job_completed failed on purpose")
