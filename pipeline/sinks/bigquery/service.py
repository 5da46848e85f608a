"""Calls to BigQuery itself: one client per process and endpoint, the retry policy applied to
BigQuery's own ``DEFAULT_RETRY``, tables made sure of, and emptiness checked."""
from __future__ import annotations

import logging
from typing import Optional

from google.api_core import exceptions as gexc
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from pipeline.core.clients import ClientCache
from pipeline.core.retry import RetryPolicy
from pipeline.errors import UsageError
from pipeline.sinks.bigquery.settings import BigQuerySettings
from pipeline.sinks.bigquery.tables import TableSpec

log = logging.getLogger(__name__)

_CLIENTS = ClientCache()


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


def retry(policy: RetryPolicy, deadline: Optional[float] = None):
    """BigQuery's own retry (its transient errors) with the policy's backoff and deadline."""
    return bigquery.DEFAULT_RETRY.with_delay(
        initial=policy.initial, maximum=policy.maximum, multiplier=policy.multiplier
    ).with_deadline(policy.deadline if deadline is None else deadline)


def ensure_table(c: bigquery.Client, settings: BigQuerySettings, spec: TableSpec,
                 deadline: float, fields: Optional[tuple] = None) -> None:
    """The table exists (created with ``fields``, the job's schema by default, when missing and
    allowed), and has every column of that schema."""
    fields = settings.schema if fields is None else fields
    r, timeout = retry(settings.retry, deadline), min(30.0, deadline)
    try:
        table = c.get_table(str(spec), retry=r, timeout=timeout)
    except gexc.NotFound:
        if not settings.create:
            raise UsageError(f"BigQuery table {spec} does not exist, and --bigquery_create=false; "
                             "create it or allow creating it") from None
        c.create_dataset(bigquery.Dataset(spec.dataset_id), exists_ok=True, retry=r,
                         timeout=timeout)
        schema = [bigquery.SchemaField.from_api_repr(f) for f in fields]
        c.create_table(bigquery.Table(str(spec), schema=schema), exists_ok=True, retry=r,
                       timeout=timeout)
        log.info("created BigQuery table %s", spec)
        return
    have = {f.name.lower() for f in table.schema}
    missing = [f["name"] for f in fields if f["name"].lower() not in have]
    if missing:
        raise UsageError(f"BigQuery table {spec} lacks the column(s) {', '.join(missing)} of the "
                         "job's schema: add them, or write to another table")


def ensure_dataset(c: bigquery.Client, settings: BigQuerySettings, spec: TableSpec,
                   deadline: float) -> None:
    """The table's dataset exists (created when missing and allowed)."""
    r = retry(settings.retry, deadline)
    try:
        c.get_dataset(spec.dataset_id, retry=r, timeout=10)
    except gexc.NotFound:
        if not settings.create:
            raise UsageError(f"BigQuery dataset {spec.dataset_id} does not exist, and "
                             "--bigquery_create=false") from None
        c.create_dataset(bigquery.Dataset(spec.dataset_id), exists_ok=True, retry=r, timeout=10)


def table_is_empty(c: bigquery.Client, settings: BigQuerySettings, spec: TableSpec,
                   deadline: float) -> bool:
    try:
        t = c.get_table(str(spec), retry=retry(settings.retry, deadline),
                        timeout=min(30.0, deadline))
    except gexc.NotFound:
        return True
    buffered = (t.streaming_buffer.estimated_rows or 0) if t.streaming_buffer else 0
    return not (t.num_rows or 0) and not buffered
