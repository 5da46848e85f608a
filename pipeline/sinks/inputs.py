"""What a sink is given: the records as one PCollection, or as a tuple of them.

``MapDatastore`` hands a sink its records as they are made, in two places (planning reads a small
unit whole; ``ReadRanges`` the rest), and does not flatten them: the local runner holds a
flattened PCollection whole until every producer is done, so a sink writing each part where it
is made streams, and one given the flatten waits for the end of reading with every record in
memory.
"""
from __future__ import annotations

import apache_beam as beam


def record_parts(records) -> tuple:
    """One PCollection, or a tuple or list of them -> a tuple of them."""
    return tuple(records) if isinstance(records, (tuple, list)) else (records,)


def labelled_parts(records) -> list[tuple[str, beam.PCollection]]:
    """(label suffix, part) for each part: '' for a single PCollection, else its index, so
    that each part's steps are named apart (``WriteShards0``, ``WriteShards1``)."""
    parts = record_parts(records)
    return [("" if len(parts) == 1 else str(i), part) for i, part in enumerate(parts)]


def all_records(records, label: str = "AllRecords"):
    """The records as one PCollection, for a sink that needs them all before it writes."""
    parts = record_parts(records)
    return parts[0] if len(parts) == 1 else parts | label >> beam.Flatten()
