"""Where records go: ``files`` (one file per namespace, composed from sharded writes) and
``bigquery`` (streamed with our own insert ids). Each sink holds its own launch-time work."""
