"""BigQuery: table names (``tables``), the export format and its schema (``export_schema``),
rows for streaming inserts (``streaming_rows``), the service calls (``service``), the launch-time
preparation (``prepare``) and the streaming sink (``stream``)."""
