"""datastore-mapper: run a job over every entity of a Datastore kind, across all
namespaces, split evenly into parallel work, on Apache Beam.

This package's names are the job API (``pipeline.api``); importing it loads no Beam and no
Google client. The layers below it, bottom to top: ``core`` (pure logic), ``api`` (the job
API), ``config`` (the resolved run), ``datastore`` (the client layer), ``sinks`` (where records
go) and ``graph`` (the Beam graph), ``launch`` (CLI and template launcher).
"""
from pipeline.api.hooks import HookContext
from pipeline.api.job import Context, Counters, JobSpec, Params
from pipeline.api.mutations import DELETE, UNCHANGED, Delete, Put
from pipeline.api.query import ALL_KINDS, ALL_NAMESPACES, DEFAULT_NAMESPACE_ONLY, Query
from pipeline.api.registry import register
from pipeline.core.totals import Totals
from pipeline.errors import MapperError

__all__ = ["ALL_KINDS", "ALL_NAMESPACES", "DEFAULT_NAMESPACE_ONLY", "DELETE", "UNCHANGED",
           "Context", "Counters", "Delete", "HookContext", "JobSpec", "MapperError", "Params",
           "Put", "Query", "Totals", "register"]
