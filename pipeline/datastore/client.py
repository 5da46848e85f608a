"""Datastore clients, one per process and target, and the one place every query is run.

Workers get the emulator from the run's options (``DatastoreTarget.emulator_host``), not from
their environment: the option wins over ``$DATASTORE_EMULATOR_HOST``. Every query of a run goes
through ``fetch``: one place to pass the snapshot time, to switch the client's own retry off
and bound each call (``pipeline.datastore.retry``), and to watch the run's queries (the tests
do).
"""
from __future__ import annotations

import logging
import os
from typing import Any

import google.auth.exceptions
from google.cloud import datastore

from pipeline.config import DatastoreTarget
from pipeline.core.clients import ClientCache
from pipeline.core.keyorder import KeyPath, flat_from_path
from pipeline.core.retry import RetryPolicy
from pipeline.datastore.decode import RawIterator
from pipeline.datastore.retry import call_options
from pipeline.errors import MapperError

log = logging.getLogger(__name__)

_CLIENTS = ClientCache()
EMULATOR_ENV = "DATASTORE_EMULATOR_HOST"


def _use_emulator(host: str) -> None:
    """The client finds the emulator through the environment: the run's option wins."""
    current = os.environ.get(EMULATOR_ENV)
    if current and current != host:
        log.warning("--emulator_host %s overrides %s=%s", host, EMULATOR_ENV, current)
    os.environ[EMULATOR_ENV] = host


def _make(target: DatastoreTarget) -> datastore.Client:
    try:
        return datastore.Client(project=target.project, database=target.database or None)
    except google.auth.exceptions.DefaultCredentialsError as e:
        raise MapperError(
            f"no usable Google Cloud credentials to reach {target.describe()} "
            f"({_credentials_problem(e)}): run `gcloud auth application-default login` (or set "
            "GOOGLE_APPLICATION_CREDENTIALS to a service account key file); for the emulator "
            f"pass --emulator_host HOST:PORT or set {EMULATOR_ENV}") from None


def _credentials_problem(err: Exception) -> str:
    """google-auth's reason, in one line (it may quote the credentials file: the CLI's error
    line and the logs redact secrets)."""
    parts = [str(a) if not isinstance(a, BaseException) else f"{type(a).__name__}: {a}"
             for a in err.args] or [type(err).__name__]
    return " ".join(" ".join(parts).split())[:500]


def client(target: DatastoreTarget) -> datastore.Client:
    """The process's client for ``target`` (clients are thread-safe and costly to make)."""
    if target.emulator_host:
        _use_emulator(target.emulator_host)
    key = (target.project, target.database or "", target.emulator_host or "")
    return _CLIENTS.get(key, lambda: _make(target))


def key_of(c: datastore.Client, path: KeyPath, namespace: str) -> datastore.Key:
    return c.key(*flat_from_path(path), namespace=namespace or None)


def fetch(q: datastore.Query, policy: RetryPolicy, **kw: Any):
    """``q.fetch(...)`` with the policy's per-call timeout and no retry of the client's own,
    without the arguments that are None (no limit, no snapshot, ...); its results decoded from
    the raw response (``pipeline.datastore.decode``: the same entities, at less CPU)."""
    return RawIterator.adopt(
        q.fetch(**call_options(policy), **{k: v for k, v in kw.items() if v is not None}))
