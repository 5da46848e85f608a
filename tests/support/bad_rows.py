"""Which entities the test job test_bq_rows gives a wrong-typed value.

Its own module: the tests recompute the set without importing tests.support.jobs_for_tests, whose jobs
would then be registered for every later test of the session.
"""
import zlib


def bq_bad(flat_path, every: int) -> bool:
    return every > 0 and zlib.crc32(repr(tuple(flat_path)).encode()) % every == 0
