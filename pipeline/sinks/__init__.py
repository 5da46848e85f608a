"""File output: sharded writes and the composition of shards into one file per namespace (and per job).

`compose.compose` concatenates finished shards into their final file, on local disk or Cloud Storage,
atomically and idempotently.
"""
