"""The 'peer': Beam's own ReadFromDatastore, one per namespace (or per (namespace, kind) pair,
``--pairs``), flattened and counted; with ``--text DIR`` also written as JSON lines by
``WriteToText`` (the peer of an export).

Runs with the same runner options as the mapper CLI's default local run
(pipeline.launch.options.LOCAL_ARGS) unless --runner is given. Prints one JSON line
{"entities": N}. Needs DATASTORE_EMULATOR_HOST for the emulator.
"""
from __future__ import annotations

import argparse
import json
import sys

import apache_beam as beam
from apache_beam.io import WriteToText
from apache_beam.io.gcp.datastore.v1new.datastoreio import ReadFromDatastore
from apache_beam.io.gcp.datastore.v1new.types import Query
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.launch.options import LOCAL_ARGS

METRIC_NS = "bench.peer"


def report(n):
    Metrics.counter(METRIC_NS, "entities").inc(n)
    return n


def json_line(entity) -> str:
    """An entity as one JSON line: its key path and namespace, and its properties (values JSON
    cannot hold as their text)."""
    key = entity.key
    return json.dumps({"__key__": {"namespace": key.namespace or "", "path": list(key.path_elements)},
                       **entity.properties}, default=str, ensure_ascii=False, sort_keys=True)


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(prog="python -m bench.peer")
    ap.add_argument("--project", required=True)
    ap.add_argument("--kind", default="Item")
    ap.add_argument("--namespaces",
                    help="JSON list of namespaces ('' is the default namespace), read as --kind")
    ap.add_argument("--pairs", help='JSON list of [namespace, kind] pairs, e.g. [["", "A"]]')
    ap.add_argument("--text", metavar="DIR",
                    help="also write every entity as a JSON line with WriteToText under DIR "
                         "(the peer of an export: Beam read -> JSON -> text files)")
    args, beam_args = ap.parse_known_args(argv)
    if not any(a == "--runner" or a.startswith("--runner=") for a in beam_args):
        beam_args = LOCAL_ARGS + beam_args
    if args.pairs:
        pairs = [tuple(p) for p in json.loads(args.pairs)]
    elif args.namespaces is not None:
        pairs = [(ns, args.kind) for ns in json.loads(args.namespaces)]
    else:
        ap.error("give --namespaces or --pairs")
    p = beam.Pipeline(options=PipelineOptions(beam_args))
    reads = [p | f"Read[{ns or '__default__'}/{kind}]" >> ReadFromDatastore(
        Query(kind=kind, project=args.project, namespace=ns or None)) for ns, kind in pairs]
    entities = reads | "Flatten" >> beam.Flatten()
    (entities
     | "Count" >> beam.combiners.Count.Globally()
     | "Report" >> beam.Map(report))
    if args.text:
        (entities
         | "ToJson" >> beam.Map(json_line)
         | "Write" >> WriteToText(args.text.rstrip("/") + "/part", file_name_suffix=".jsonl"))
    result = p.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace(METRIC_NS))["counters"]
    total = sum(c.committed for c in counters if c.key.metric.name == "entities")
    print(json.dumps({"entities": total}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
