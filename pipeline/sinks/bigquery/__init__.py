"""BigQuery: table names (``tables``), rows for streaming inserts (``streaming_rows``), the
service calls (``service``), the launch-time preparation (``prepare``) and the streaming sink
(``stream``). The export format itself is ``pipeline.core.export_format`` (the files sink uses it
too)."""
