"""A writing run's ``changes.jsonl``: a bounded sample of before/after pairs per namespace.

Each slice keeps at most ``--changes_sample`` pairs; here each namespace keeps the first
``--changes_sample`` by key (the same whatever the workers did), and one file is written with
them, in namespace then key order, before the summary (``FinishRunFn`` waits for it).
"""
from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from pipeline.config import WriteConfig


class _WriteChangesFn(beam.DoFn):
    def __init__(self, path: str):
        self.path = path

    def process(self, per_namespace: list):
        lines = [json.dumps(sample, ensure_ascii=False, sort_keys=True)
                 for _, samples in sorted(per_namespace, key=lambda kv: kv[0])
                 for sample in sorted(samples, key=lambda s: (s["kind"], s["key"]))]
        with FileSystems.create(self.path) as f:
            f.write(("\n".join(lines) + ("\n" if lines else "")).encode("utf-8"))
        yield self.path


class WriteChanges(beam.PTransform):
    """(namespace, sample) -> the path of changes.jsonl, once written."""

    def __init__(self, write: WriteConfig):
        super().__init__()
        self.write = write

    def expand(self, samples):
        n = self.write.changes_sample
        return (samples
                | "FirstPerNamespace" >> beam.combiners.Top.PerKey(
                    n, key=lambda s: (s["kind"], s["key"]), reverse=True)
                | "AllNamespaces" >> beam.combiners.ToList()
                | "WriteFile" >> beam.ParDo(_WriteChangesFn(self.write.changes_path)))
