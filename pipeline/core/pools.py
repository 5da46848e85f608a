"""Process-wide thread pools, each made on first use: the calls one worker thread sends ahead
of itself (the next page of a query, a commit) share a few threads per process."""
from __future__ import annotations

import concurrent.futures as cf
import threading

_pools: dict[str, cf.ThreadPoolExecutor] = {}
_lock = threading.Lock()


def shared_pool(name: str, threads: int) -> cf.ThreadPoolExecutor:
    """The process's pool ``name`` (its threads named after it), made on first use."""
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = cf.ThreadPoolExecutor(threads, thread_name_prefix=name)
        return pool
