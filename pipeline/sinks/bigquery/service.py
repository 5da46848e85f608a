"""Calls to BigQuery itself: one client per process and endpoint, the retry policy applied to
BigQuery's own ``DEFAULT_RETRY``, tables made sure of, and emptiness checked."""
from __future__ import annotations

import logging
from typing import Callable, Optional, TypeVar, Union

from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from pipeline.core.clients import ClientCache
from pipeline.core.retry import LaunchRetry, RetryPolicy
from pipeline.errors import UsageError
from pipeline.sinks.bigquery.settings import BigQuerySettings
from pipeline.sinks.bigquery.tables import TableSpec

log = logging.getLogger(__name__)

_CLIENTS = ClientCache()
T = TypeVar("T")
#: BigQuery's own idea of a transient error (its DEFAULT_RETRY's predicate).
TRANSIENT = bigquery.DEFAULT_RETRY._predicate
#: A call's deadline in seconds, or the launch's retries (``LaunchRetry``), which give it.
Deadline = Union[float, LaunchRetry]


def client(project: str, emulator_host: Optional[str] = None) -> bigquery.Client:
    """The process's google-cloud-bigquery client for ``project`` and endpoint. With an
    emulator host, no credentials are looked up at all (anonymous)."""

    def make() -> bigquery.Client:
        if emulator_host:
            endpoint = emulator_host if "://" in emulator_host else f"http://{emulator_host}"
            return bigquery.Client(project=project, credentials=AnonymousCredentials(),
                                   client_options=ClientOptions(api_endpoint=endpoint))
        return bigquery.Client(project=project)

    return _CLIENTS.get((project, emulator_host), make)


def retry(policy: RetryPolicy, deadline: Optional[Deadline] = None):
    """BigQuery's own retry (its transient errors) with the policy's backoff and deadline. At
    launch (``deadline`` a ``LaunchRetry``): no retry of a refused connection or an unknown host
    before BigQuery answered once, and the launch's deadline of the moment."""
    r = bigquery.DEFAULT_RETRY.with_delay(
        initial=policy.initial, maximum=policy.maximum, multiplier=policy.multiplier)
    if isinstance(deadline, LaunchRetry):
        return r.with_predicate(deadline.retries(TRANSIENT)).with_deadline(
            deadline.policy().deadline)
    return r.with_deadline(policy.deadline if deadline is None else deadline)


def _seconds(deadline: Deadline) -> float:
    return deadline.policy().deadline if isinstance(deadline, LaunchRetry) else deadline


def _answered(deadline: Deadline, fn: Callable[[], T]) -> T:
    """``fn()``; at launch, notes that BigQuery answered (a result, or an error it sent, such as
    NotFound): from then on its checks get ``--bigquery_deadline``."""
    try:
        result = fn()
    except gexc.GoogleAPICallError as e:
        if isinstance(deadline, LaunchRetry) and not TRANSIENT(e):
            deadline.answered = True
        raise
    if isinstance(deadline, LaunchRetry):
        deadline.answered = True
    return result


def ensure_table(c: bigquery.Client, settings: BigQuerySettings, spec: TableSpec,
                 deadline: Deadline, fields: Optional[tuple] = None) -> None:
    """The table exists (created with ``fields``, the job's schema by default, when missing and
    allowed), and has every column of that schema."""
    fields = settings.schema if fields is None else fields

    def r():
        return {"retry": retry(settings.retry, deadline), "timeout": min(30.0, _seconds(deadline))}

    try:
        table = _answered(deadline, lambda: c.get_table(str(spec), **r()))
    except gexc.NotFound:
        if not settings.create:
            raise UsageError(f"BigQuery table {spec} does not exist, and --bigquery_create=false; "
                             "create it or allow creating it") from None
        _answered(deadline, lambda: c.create_dataset(bigquery.Dataset(spec.dataset_id),
                                                     exists_ok=True, **r()))
        schema = [bigquery.SchemaField.from_api_repr(f) for f in fields]
        _answered(deadline, lambda: c.create_table(bigquery.Table(str(spec), schema=schema),
                                                   exists_ok=True, **r()))
        log.info("created BigQuery table %s", spec)
        return
    have = {f.name.lower() for f in table.schema}
    missing = [f["name"] for f in fields if f["name"].lower() not in have]
    if missing:
        raise UsageError(f"BigQuery table {spec} lacks the column(s) {', '.join(missing)} of the "
                         "job's schema: add them, or write to another table")


def ensure_dataset(c: bigquery.Client, settings: BigQuerySettings, spec: TableSpec,
                   deadline: Deadline) -> None:
    """The table's dataset exists (created when missing and allowed)."""
    try:
        _answered(deadline, lambda: c.get_dataset(
            spec.dataset_id, retry=retry(settings.retry, deadline), timeout=10))
    except gexc.NotFound:
        if not settings.create:
            raise UsageError(f"BigQuery dataset {spec.dataset_id} does not exist, and "
                             "--bigquery_create=false") from None
        _answered(deadline, lambda: c.create_dataset(
            bigquery.Dataset(spec.dataset_id), exists_ok=True,
            retry=retry(settings.retry, deadline), timeout=10))


def table_is_empty(c: bigquery.Client, settings: BigQuerySettings, spec: TableSpec,
                   deadline: Deadline) -> bool:
    try:
        t = _answered(deadline, lambda: c.get_table(
            str(spec), retry=retry(settings.retry, deadline),
            timeout=min(30.0, _seconds(deadline))))
    except gexc.NotFound:
        return True
    buffered = (t.streaming_buffer.estimated_rows or 0) if t.streaming_buffer else 0
    return not (t.num_rows or 0) and not buffered
