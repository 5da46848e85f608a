"""A few calls in flight at once, inside one DoFn: ``InFlight``.

The planner's work per namespace is a query or two whose time is mostly the backend's latency,
not this worker's CPU: with one call at a time a worker waits on each in turn. ``InFlight``
runs up to ``limit`` calls on a thread pool and hands their results back, in the DoFn's own
thread, as they complete: only the calls run on the pool (Datastore's client is thread-safe);
whatever is done with their results (the job's hooks and ``next``) stays in the DoFn's thread,
one namespace after another, as everywhere else.

Use: ``submit`` from ``process`` (yields the results that are ready, waiting while ``limit``
calls are running), ``drain`` from ``finish_bundle`` (every result left), ``reset`` from
``start_bundle``, ``close`` from ``teardown``. A call that raised raises when its result is handed back: the bundle fails.
"""
from __future__ import annotations

import concurrent.futures as cf
from typing import Any, Callable, Iterator, Optional


class InFlight:
    def __init__(self, limit: int):
        self.limit = max(1, int(limit))
        self._pool: Optional[cf.ThreadPoolExecutor] = None
        self._running: set = set()

    def submit(self, fn: Callable[..., Any], *args: Any) -> Iterator[Any]:
        """Start ``fn(*args)``; yield the results of calls already done (and, while the pool
        is full, wait for one). With a limit of 1 the call runs here, at once."""
        if self.limit == 1:
            yield fn(*args)
            return
        if self._pool is None:
            self._pool = cf.ThreadPoolExecutor(self.limit, thread_name_prefix="planner")
        self._running.add(self._pool.submit(fn, *args))
        if len(self._running) >= self.limit:
            yield from self._collect(cf.FIRST_COMPLETED)
        yield from self._done()

    def drain(self) -> Iterator[Any]:
        """The results of every call still running, as they complete."""
        while self._running:
            yield from self._collect(cf.FIRST_COMPLETED)

    def _done(self) -> Iterator[Any]:
        for f in [f for f in self._running if f.done()]:
            self._running.discard(f)
            yield f.result()

    def _collect(self, how: str) -> Iterator[Any]:
        done, _ = cf.wait(self._running, return_when=how)
        for f in done:
            self._running.discard(f)
            yield f.result()

    def reset(self) -> None:
        """Forget the calls of a bundle that failed: their results belong to no bundle."""
        self._running.clear()

    def close(self) -> None:
        """Forget the running calls and stop the pool."""
        self._running.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
