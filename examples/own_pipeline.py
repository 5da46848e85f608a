"""A Beam pipeline of your own around the mapper's transforms (``pipeline.transforms``): every
``Item`` of every namespace read as the mapper reads it, then counted per namespace and category
by your own transforms, and the ready-made ``export_keys`` job run over the same elements.

    python -m examples.own_pipeline --project demo --output /tmp/own --runner=FnApiRunner
"""
from __future__ import annotations

import argparse
import json
import sys

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline import Query
from pipeline.transforms import ReadEveryNamespace, RunJob


def build(p: beam.Pipeline, project: str, **read_options):
    """-> (((namespace, category), count), export_keys' records)."""
    items = p | "ReadItems" >> ReadEveryNamespace(Query(kind="Item", keys_only=False),
                                                  project=project, **read_options)
    per_category = (
        items
        | "NamespaceAndCategory" >> beam.Map(lambda e: ((e.namespace, e.entity["category"]), 1))
        | "Count" >> beam.CombinePerKey(sum))
    keys = items | "ExportKeys" >> RunJob("export_keys")
    return per_category, keys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.own_pipeline")
    parser.add_argument("--project", required=True)
    parser.add_argument("--output", required=True, help="directory (local or gs://)")
    args, beam_args = parser.parse_known_args(argv)
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        per_category, keys = build(p, args.project)
        (per_category
         | "CategoryLines" >> beam.MapTuple(lambda k, n: f"{k[0] or '(default)'}\t{k[1]}\t{n}")
         | "WriteCategories" >> beam.io.WriteToText(f"{args.output}/categories", ".tsv"))
        (keys
         | "KeyLines" >> beam.Map(json.dumps)
         | "WriteKeys" >> beam.io.WriteToText(f"{args.output}/keys", ".jsonl"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
