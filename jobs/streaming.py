"""Stream whole entities of a kind into BigQuery, as they are read (the Go mapper's example 6)."""
from __future__ import annotations

from jobs.export import ExportEntities
from pipeline import register


@register
class StreamEntities(ExportEntities):
    """Full entities of a kind streamed into BigQuery (--bigquery_table), one row per entity.

    Rows are converted as export_entities converts them. The table's schema is made at launch
    from a sample of the kind (--bigquery_schema_sample entities); a property the sample did not
    show, or of another type, goes with its original name into the __unmapped__ column as JSON
    text, so no value is dropped and no row is rejected for its shape.
    """

    name = "stream_entities"
    streams_to_bigquery = True
