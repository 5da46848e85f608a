"""A BigQuery emulator for the tests (a pytest plugin, loaded by conftest.py).

`bqemulator` (PyPI) runs in its own process (devtools/bq_emulator.py), in memory, on free local ports. Offline it only starts
when DuckDB finds its `spatial` extension locally, so the fixture gives the server a HOME of its own
(a temp dir, only in the subprocess's environment) holding a copy of the extension shipped by the
PyPI package `duckdb-extension-spatial` (same version as `duckdb`, both pinned in the test extra).

- `bigquery_emulator_server`: session-scoped; starts the server (about 3 s) and yields a
  `BigQueryEmulator` (endpoint, host, project and a google-cloud-bigquery client pointed at it).
- `bigquery_emulator`: function-scoped; the same server object. bqemulator has no reset endpoint
  (its /admin routes are read-only), so tests isolate themselves with `new_dataset()`.

Without bqemulator or the spatial extension the fixtures skip with a reason containing "emulator"; if
the server does not start they fail with the tail of its log.

Every google-cloud-bigquery call must pass a short `retry` and `timeout` (use `emu.retry` and
`emu.timeout`): the client's default retry deadline is 600 s and it retries 500s and connection
errors, so a misbehaving emulator otherwise looks like a 10-minute hang.

Emulator quirks (bqemulator 1.4.0): it accepts unknown fields and missing REQUIRED fields silently; a
wrong type gives an insert error only with `skip_invalid_rows=True`, and the error's `location` may
be wrong; it does not deduplicate on insertId. "avro extension download failed" in its log is harmless.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools.bq_emulator import BigQueryEmulatorProcess, unavailable_reason
from tests.support import TEST_PROJECT

BIGQUERY_CALL_TIMEOUT = 10.0  # seconds, per HTTP request
BIGQUERY_RETRY_DEADLINE = 30.0  # seconds, for all retries of one call


def bigquery_retry():
    """google-cloud-bigquery's DEFAULT_RETRY with a 30 s deadline instead of 600 s."""
    from google.cloud import bigquery

    return bigquery.DEFAULT_RETRY.with_deadline(BIGQUERY_RETRY_DEADLINE)


@dataclass
class BigQueryEmulator:
    endpoint: str  # http://127.0.0.1:PORT (the client's api_endpoint)
    host: str  # 127.0.0.1:PORT (the value for BIGQUERY_EMULATOR_HOST)
    project: str
    client: object  # google.cloud.bigquery.Client (anonymous credentials)
    retry: object = None  # pass as retry= to every client call
    timeout: float = BIGQUERY_CALL_TIMEOUT  # pass as timeout= to every client call
    log: Path | None = None  # the server's log file

    def new_dataset(self, prefix: str = "d") -> str:
        """Create a fresh, empty dataset with a unique name; returns its id (without the project)."""
        dataset_id = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.client.create_dataset(f"{self.project}.{dataset_id}", retry=self.retry,
                                   timeout=self.timeout)
        return dataset_id

    def rows(self, table_spec: str) -> list[dict]:
        """All rows of a table ("dataset.table" or "project.dataset.table") as dicts."""
        if table_spec.count(".") == 1:
            table_spec = f"{self.project}.{table_spec}"
        return [dict(row.items())
                for row in self.client.list_rows(table_spec, retry=self.retry, timeout=self.timeout)]


def _client(endpoint: str, project: str):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(project=project, credentials=AnonymousCredentials(),
                           client_options={"api_endpoint": endpoint})


@pytest.fixture(scope="session")
def bigquery_emulator_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigQueryEmulator]:
    """bqemulator in memory on free ports, for the whole session (starts in about 3 s)."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"BigQuery emulator (bqemulator) unavailable: {reason}")
    server = BigQueryEmulatorProcess(TEST_PROJECT, tmp_path_factory.mktemp("bqemulator"))
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield BigQueryEmulator(endpoint=server.endpoint, host=server.host, project=server.project,
                               client=_client(server.endpoint, server.project),
                               retry=bigquery_retry(), timeout=BIGQUERY_CALL_TIMEOUT, log=server.log)
    finally:
        server.stop()


@pytest.fixture
def bigquery_emulator(bigquery_emulator_server: BigQueryEmulator) -> BigQueryEmulator:
    """The session's emulator. Not reset (bqemulator has no reset endpoint): use `new_dataset()`."""
    return bigquery_emulator_server
