"""The first steps of the graph: the namespaces to read, and each one cut into its initial
ranges (the elements of the reading step)."""
from __future__ import annotations

import logging
from typing import NamedTuple, Union

import apache_beam as beam

from pipeline.api import hooks
from pipeline.config import JobConfig, ReadConfig
from pipeline.core.keyrange import KeyRange
from pipeline.core.namespaces import namespace_label, require_namespaces
from pipeline.core.totals import NamespacePlanned, Totals
from pipeline.core.valuerange import ValueRange
from pipeline.datastore import retry
from pipeline.datastore.client import client
from pipeline.datastore.metadata import list_namespaces
from pipeline.datastore.sampling import split_namespace
from pipeline.errors import MapperError
from pipeline.graph.lifecycle import fire

log = logging.getLogger(__name__)

#: The tag of the side output that carries SliceStats and NamespacePlanned records.
STATS = "stats"


class RangeTask(NamedTuple):
    """One initial range of one namespace: the element the reading SDF gets."""

    namespace: str
    range_id: str
    restriction: Union[KeyRange, ValueRange]


class ExpandNamespacesFn(beam.DoFn):
    """All namespaces (``__namespace__``) or the listed ones, which must exist; without those a
    failed run completed (``skip``: --output_mode=resume)."""

    def __init__(self, read: ReadConfig, skip: frozenset = frozenset()):
        self.read, self.skip = read, skip

    def process(self, element):
        for ns in self._namespaces():
            if ns not in self.skip:
                yield ns

    def _namespaces(self):
        read = self.read
        existing = retry.call(
            lambda: list_namespaces(client(read.target), read.retry, read.read_time),
            "listing namespaces", read.retry, where=read.target.describe())
        wanted = read.query.namespaces
        if wanted is None:
            yield from existing
            return
        try:
            require_namespaces(wanted, existing)
        except ValueError as e:
            raise MapperError(str(e)) from None
        yield from wanted


class SplitNamespaceFn(beam.DoFn):
    """A namespace -> its initial ranges (and a NamespacePlanned record on ``stats``), firing
    ``namespace_started`` and each ``range_started``."""

    def __init__(self, job: JobConfig, read: ReadConfig):
        self.job, self.read = job, read

    def process(self, namespace: str):
        retries = []
        ranges, samples = split_namespace(client(self.read.target), self.read, namespace,
                                          on_retry=retries.append)
        label = namespace_label(namespace)
        log.info("namespace %s: %d ranges from %d samples", label, len(ranges), samples)
        fire(self.job, hooks.NAMESPACE_STARTED, namespace=namespace,
             totals=Totals(ranges=len(ranges), samples=samples))
        yield beam.pvalue.TaggedOutput(STATS, NamespacePlanned(namespace, len(ranges), samples,
                                                                retries=len(retries)))
        for i, r in enumerate(ranges):
            range_id = f"{label}#{i}"
            fire(self.job, hooks.RANGE_STARTED, namespace=namespace, range_id=range_id,
                 range=r.describe())
            yield RangeTask(namespace, range_id, r)
