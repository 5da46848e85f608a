"""Datastore clients, one per process and target, and the one place every query is run.

Workers get the emulator from the run's options (``DatastoreTarget.emulator_host``), not from
their environment. Every query of a run goes through ``fetch``: one place to pass the snapshot
time and to watch the run's queries (the tests do).
"""
from __future__ import annotations

import os
from typing import Any

from google.cloud import datastore

from pipeline.config import DatastoreTarget
from pipeline.core.clients import ClientCache
from pipeline.core.keyorder import KeyPath, flat_from_path

_CLIENTS = ClientCache()


def client(target: DatastoreTarget) -> datastore.Client:
    """The process's client for ``target`` (clients are thread-safe and costly to make)."""
    if target.emulator_host:
        os.environ.setdefault("DATASTORE_EMULATOR_HOST", target.emulator_host)
    key = (target.project, target.database or "", target.emulator_host or "")
    return _CLIENTS.get(key, lambda: datastore.Client(project=target.project,
                                                      database=target.database or None))


def key_of(c: datastore.Client, path: KeyPath, namespace: str) -> datastore.Key:
    return c.key(*flat_from_path(path), namespace=namespace or None)


def fetch(q: datastore.Query, **kw: Any):
    """``q.fetch(...)`` without the arguments that are None (no limit, no snapshot, ...)."""
    return q.fetch(**{k: v for k, v in kw.items() if v is not None})
