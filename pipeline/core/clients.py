"""One client per process and endpoint, for every service the mapper talks to.

Google's clients are thread-safe and costly to make (credentials, channels), so each worker
process keeps one per key (project, database, endpoint, ...) and every step shares it.
"""
from __future__ import annotations

import threading
from typing import Callable, Hashable, TypeVar

C = TypeVar("C")


class ClientCache:
    """A process-wide map key -> client, made on first use."""

    def __init__(self) -> None:
        self._clients: dict = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], C]) -> C:
        with self._lock:
            c = self._clients.get(key)
            if c is None:
                c = self._clients[key] = make()
            return c

    def clear(self) -> None:
        with self._lock:
            self._clients.clear()
