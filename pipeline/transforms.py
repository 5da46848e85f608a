"""The mapper as Beam transforms, for pipelines of your own.

- ``ReadEveryNamespace(query, project=...)``: ``PBegin -> PCollection[NamespacedEntity]``, every
  entity (or key) the ``Query`` matches in every namespace it names (``ALL_NAMESPACES`` by
  default), read exactly as the mapper reads: each (namespace, kind) split at its scatter
  samples into ``shards`` key ranges, each range read by a splittable DoFn in slices of
  ``slice_entities`` (a checkpoint after each, so a runner can split the rest of a range while it
  is read: dynamic splits on Dataflow), narrow queries of about ``query_entities``, transient
  errors retried for ``datastore_deadline`` seconds, from ``database`` and, with ``read_time``, a
  snapshot of that moment.
- ``RunJob(job, params)``: ``PCollection[NamespacedEntity] -> PCollection[record]``, a
  ``JobSpec``'s ``next`` applied to each element, its counters as Beam counters
  (``datastore_mapper.JOB``).

Which runners: the read is a splittable DoFn, so it needs a portable runner: Beam's
``FnApiRunner`` (``--runner=FnApiRunner``, what the CLI uses locally), Prism, or Dataflow (Runner
v2). The old bundle-based ``DirectRunner`` cannot run splittable DoFns.

What the CLI adds and these transforms do not: the launch checks, output files, dead letters,
the lifecycle hooks, write-back and the run's summary. An exception in ``next`` fails the bundle
(the runner retries it, then fails the pipeline).

Importing ``pipeline`` stays light: only ``import pipeline.transforms`` loads Beam.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import os
from typing import Any, Mapping, Optional, Union

import apache_beam as beam
from apache_beam.metrics import Metrics

from pipeline.api.job import Context, Counters, JobSpec, Params
from pipeline.api.mutations import Delete, Put
from pipeline.api.query import Query
from pipeline.api.query import resolve as resolve_query
from pipeline.api.registry import get_job, load_modules
from pipeline.config import DatastoreTarget, JobConfig, ReadConfig, RunConfig
from pipeline.core.keyorder import StringOrder, default_string_order
from pipeline.core.retry import RetryPolicy
from pipeline.errors import MapperError
from pipeline.graph.mapper import read_units
from pipeline.graph.namespaces import RECORDS

__all__ = ["NamespacedEntity", "ReadEveryNamespace", "RunJob"]


@dataclasses.dataclass(frozen=True)
class NamespacedEntity:
    """One element of ``ReadEveryNamespace``: where it was read and what.

    ``namespace``: ``""`` for the default namespace; ``kind``; ``key``: its
    ``google.cloud.datastore.Key``; ``entity``: the ``google.cloud.datastore.Entity``, or None
    for a keys-only query; ``range_id``: the key range it was read in (``acme#3``)."""

    namespace: str
    kind: str
    key: Any
    entity: Any = None
    range_id: str = ""

    @property
    def item(self) -> Any:
        """What a job's ``next`` gets: the entity, or the key of a keys-only read."""
        return self.key if self.entity is None else self.entity


class _Emit(JobSpec):
    """The read's own job: each entity (or key) as a NamespacedEntity."""

    name = "read_every_namespace"

    def next(self, ctx, item):
        entity = None if hasattr(item, "flat_path") else item
        key = item if entity is None else item.key
        yield NamespacedEntity(ctx.namespace, ctx.kind, key, entity, ctx.range_id)


class ReadEveryNamespace(beam.PTransform):
    """``PBegin -> PCollection[NamespacedEntity]``: every entity (or key) of ``query`` (a
    ``pipeline.Query``) in each of its namespaces, split and read as the mapper reads.

    ``project`` (required), ``database`` (None: the default database), ``read_time`` (a
    timezone-aware datetime: read that snapshot; None: the latest data), ``emulator_host``
    (None: ``$DATASTORE_EMULATOR_HOST`` as the client reads it), ``shards`` (ranges per
    namespace and kind), ``oversampling`` (scatter samples per range), ``slice_entities`` and
    ``slice_seconds`` (a slice's size: a checkpoint after each), ``query_entities`` (entities
    per narrow query), ``datastore_deadline`` (seconds of retries of a failing call),
    ``key_order`` (``auto``, ``utf8`` for Datastore or ``utf16`` for the emulator)."""

    def __init__(self, query: Query, *, project: str, database: Optional[str] = None,
                 read_time: Optional[dt.datetime] = None, emulator_host: Optional[str] = None,
                 shards: int = 8, oversampling: int = 32, slice_entities: int = 2000,
                 slice_seconds: float = 30.0, query_entities: int = 1000,
                 datastore_deadline: float = 300.0, key_order: str = "auto"):
        super().__init__()
        if not project:
            raise MapperError("ReadEveryNamespace needs project=")
        if read_time is not None and read_time.tzinfo is None:
            raise MapperError("read_time must be timezone-aware (UTC, say)")
        host = emulator_host or os.environ.get("DATASTORE_EMULATOR_HOST") or None
        order = default_string_order(host) if key_order == "auto" else StringOrder(key_order)
        self.read = ReadConfig(
            target=DatastoreTarget(project=project, database=database, emulator_host=host),
            query=resolve_query(query), read_time=read_time, order=order, shards=shards,
            oversampling=oversampling, slice_entities=slice_entities,
            slice_seconds=slice_seconds, query_entities=query_entities,
            retry=RetryPolicy(deadline=datastore_deadline),
            read_time_option=read_time.isoformat() if read_time else None)
        self.job = JobConfig(spec=_Emit(), name=_Emit.name,
                             params=Params({}, dt.datetime.now(dt.timezone.utc)))

    def expand(self, pbegin):
        # read as the mapper reads; small namespaces are read whole while planning
        split, read_out = read_units(pbegin | "Start" >> beam.Create([None]),
                                     RunConfig(job=self.job, read=self.read))
        return ((split[RECORDS], read_out.records)
                | "AllRecords" >> beam.Flatten()
                | "Elements" >> beam.Map(lambda unit_record: unit_record[1]))


class _RunJobFn(beam.DoFn):
    def __init__(self, job: JobSpec, name: str, params: Params, keys_only: bool,
                 max_counters: int):
        self.job, self.name, self.params, self.max_counters = job, name, params, max_counters
        self.keys_only = keys_only

    def setup(self):
        self._params = self.params
        self._metrics_ns = f"datastore_mapper.{self.name}"
        self._metrics: dict = {}

    def start_bundle(self):
        self._counters = Counters(self.max_counters)

    def process(self, element: NamespacedEntity):
        ctx = Context(self.name, self._params, element.namespace, element.range_id, "",
                      self._counters, element.kind)
        if self.keys_only:
            item = element.key
        elif element.entity is None:
            raise MapperError(f"job {self.name} reads whole entities (its query is not "
                              "keys_only): read them with ReadEveryNamespace(Query(..., "
                              "keys_only=False))")
        else:
            item = element.entity
        out = self.job.next(ctx, item)
        for record in (out if out is not None else ()):
            if isinstance(record, (Put, Delete)):
                raise MapperError(f"job {self.name} yielded a {type(record).__name__}: RunJob "
                                  "does not write to Datastore (run the job with the "
                                  "datastore-mapper command for that)")
            yield record

    def finish_bundle(self):
        for name, n in self._counters.values.items():
            metric = self._metrics.get(name)
            if metric is None:
                metric = self._metrics[name] = Metrics.counter(self._metrics_ns, name)
            metric.inc(n)
        self._counters = Counters(self.max_counters)


class RunJob(beam.PTransform):
    """``PCollection[NamespacedEntity] -> PCollection[record]``: ``job`` (a ``JobSpec``
    subclass or instance, or a registered job's name) applied to each element: its
    ``next(ctx, item)`` gets what its query reads: the element's key when the query is keys
    only, else its entity (so a job that reads entities needs a read of entities), and a
    ``ctx`` with the element's namespace, kind and range id and ``params`` (a mapping of
    strings, as ``--params``). Its records are the output; its ``ctx.counters`` are Beam
    counters under ``datastore_mapper.JOB``. The job's ``query(params)`` is called once, here,
    as the CLI does at launch (a job may keep what it needs on itself), but only for whether it
    reads keys: what is read is the read's business. Its hooks do not run, and it may not yield
    ``Put``/``Delete``."""

    def __init__(self, job: Union[str, type, JobSpec], params: Optional[Mapping[str, str]] = None,
                 max_counters: int = 1000):
        super().__init__()
        if isinstance(job, str):  # the ready-made jobs registered first
            load_modules()
            job = get_job(job)
        spec = job() if isinstance(job, type) else job
        if not isinstance(spec, JobSpec):
            raise MapperError(f"RunJob needs a JobSpec, not {type(spec).__name__}")
        self.spec, self.max_counters = spec, max_counters
        values = {str(k): str(v) for k, v in (params or {}).items()}
        allowed = dict(type(spec).parameters)
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise MapperError(f"job {spec.name} has no parameter {', '.join(map(repr, unknown))};"
                              f" it accepts: {', '.join(allowed) or 'none'}")
        self.params = Params(values, dt.datetime.now(dt.timezone.utc))
        self.keys_only = resolve_query(spec.query(self.params)).keys_only

    def expand(self, elements):
        return elements | "Next" >> beam.ParDo(_RunJobFn(
            self.spec, self.spec.name, self.params, self.keys_only, self.max_counters))
