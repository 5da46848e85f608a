"""The end of a tenant erase: each namespace read checked to hold no entity of any kind
(``pipeline.core.erase``), into the summary before it is written; ``FinishRunFn`` fails the
run when something is left."""
from __future__ import annotations

import apache_beam as beam

from pipeline.config import RunConfig
from pipeline.core.erase import LEFT_LIMIT, erase_section
from pipeline.core.namespaces import namespace_label, normalise_namespaces
from pipeline.datastore.client import client
from pipeline.datastore.metadata import keys_left


def checks_erase(run: RunConfig) -> bool:
    """Whether the run ends with the check: a job that deletes what it reads
    (``empties_namespaces``), reading every kind with no filter nor ancestor, that writes for
    real (a dry run deletes nothing; a filtered delete is not meant to empty a namespace)."""
    q, w = run.read.query, run.write
    return (bool(getattr(run.job.spec, "empties_namespaces", False)) and w.enabled
            and not w.dry_run and q.kinds is None and not q.equalities
            and q.prop_range is None and q.ancestor is None)


class CheckErasedFn(beam.DoFn):
    """summary -> the summary with ``erase``: what each namespace it lists still holds (read
    after every namespace completed, so after every write committed)."""

    def __init__(self, run: RunConfig, limit: int = LEFT_LIMIT):
        self.run, self.limit = run, limit

    def setup(self):
        self._client = client(self.run.read.target)

    def process(self, summary: dict):
        read = self.run.read
        # The namespaces read, and every one --namespaces named (each exists: checked at launch).
        namespaces = sorted({*normalise_namespaces(summary.get("namespaces") or {}),
                             *(read.query.namespaces or ())})
        left = {namespace_label(ns): keys_left(self._client, ns, read.retry, self.limit,
                                               where=read.target.describe())
                for ns in namespaces}
        summary["erase"] = erase_section(left, self.limit)
        yield summary
