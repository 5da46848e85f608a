"""What the BigQuery sink needs, resolved at launch (``pipeline.sinks.bigquery.prepare``)."""
from __future__ import annotations

import dataclasses
from typing import Optional

from pipeline.core.retry import RetryPolicy
from pipeline.core.export_format import columns_from_rows
from pipeline.sinks.bigquery.streaming_rows import MAX_BATCH_BYTES, MAX_BATCH_ROWS
from pipeline.sinks.bigquery.tables import TableSpec

#: Streaming's retries: re-sent rows wait 0.5 s doubling up to 10 s; --bigquery_deadline in all.
STREAMING_RETRY = RetryPolicy(initial=0.5, maximum=10.0, deadline=120.0)


@dataclasses.dataclass(frozen=True)
class BigQuerySettings:
    """The table (``{namespace}`` allowed), its schema, and how to write to it.

    ``schema``: the job's declared schema, the same for every table.
    ``columns``: for typed rows streamed with a schema made at launch, kind -> the export's
    columns of that kind (``pipeline.core.export_format.columns_from_rows``), by which each row is fitted to
    its kind's schema; a kind the launch's sample did not see gets the key column only (its
    properties are counted as unmapped).
    ``retry``: transient errors are retried for ``retry.deadline`` seconds (--bigquery_deadline).
    """

    table: TableSpec
    schema: tuple  # BigQuery JSON schema fields (dicts), as a tuple to keep the settings hashable
    columns: Optional[dict] = dataclasses.field(default=None, hash=False, compare=False)
    create: bool = True
    disposition: str = "append"  # or "empty"
    emulator_host: Optional[str] = None
    dead_letter: Optional[str] = None  # a file path (local or gs://)
    max_bad_rows: int = 0
    retry: RetryPolicy = STREAMING_RETRY
    batch_rows: int = MAX_BATCH_ROWS
    batch_bytes: int = MAX_BATCH_BYTES

    def columns_for(self, kind: str) -> dict:
        found = (self.columns or {}).get(kind)
        if found is None:
            found = columns_from_rows([])
        return found

    def schema_for(self, kind: str) -> tuple:
        """The fields of ``kind``'s table."""
        if self.columns is None:
            return self.schema
        return tuple(self.columns_for(kind)["schema"])

    @property
    def where(self) -> str:
        """BigQuery, or the emulator it is, for messages."""
        return f"BigQuery at {self.emulator_host}" if self.emulator_host else "BigQuery"
