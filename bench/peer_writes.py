"""The write 'peer': Beam's own ReadFromDatastore -> Map(rename) -> WriteToDatastore, one read
per namespace, ``throttle_rampup=False`` (the emulator), on the mapper's local runner setting.

    python -m bench.peer_writes --project P --namespaces '["", "acme"]' --from category --to genre

Prints one JSON line {"entities": N} (entities written). Needs DATASTORE_EMULATOR_HOST.
"""
from __future__ import annotations

import argparse
import json
import sys

import apache_beam as beam
from apache_beam.io.gcp.datastore.v1new.datastoreio import ReadFromDatastore, WriteToDatastore
from apache_beam.io.gcp.datastore.v1new.types import Query
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.launch.options import LOCAL_ARGS

METRIC_NS = "bench.peer_writes"


class Rename:
    """What rename_property does to one entity, on Beam's own entity type."""

    def __init__(self, old: str, new: str):
        self.old, self.new = old, new

    def __call__(self, entity):
        props = entity.properties
        if self.old in props:
            props[self.new] = props.pop(self.old)
            if self.old in entity.exclude_from_indexes:
                entity.exclude_from_indexes = (set(entity.exclude_from_indexes) - {self.old}) \
                    | {self.new}
        Metrics.counter(METRIC_NS, "entities").inc()
        return entity


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m bench.peer_writes")
    ap.add_argument("--project", required=True)
    ap.add_argument("--kind", default="Item")
    ap.add_argument("--namespaces", required=True, help="JSON list ('' is the default)")
    ap.add_argument("--from", dest="old", required=True)
    ap.add_argument("--to", dest="new", required=True)
    args, beam_args = ap.parse_known_args(argv)
    if not any(a == "--runner" or a.startswith("--runner=") for a in beam_args):
        beam_args = LOCAL_ARGS + beam_args
    p = beam.Pipeline(options=PipelineOptions(beam_args))
    reads = [p | f"Read[{ns or '__default__'}]" >> ReadFromDatastore(
        Query(kind=args.kind, project=args.project, namespace=ns or None))
        for ns in json.loads(args.namespaces)]
    (reads
     | "Flatten" >> beam.Flatten()
     | "Rename" >> beam.Map(Rename(args.old, args.new))
     | "Write" >> WriteToDatastore(args.project, throttle_rampup=False))
    result = p.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace(METRIC_NS))["counters"]
    print(json.dumps({"entities": sum(c.committed for c in counters)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
