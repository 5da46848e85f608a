"""datastore-mapper: run a job over every entity of a Datastore kind, across all
namespaces, split evenly into parallel work, on Apache Beam."""
from pipeline.errors import MapperError
from pipeline.job import Context, Counters, JobSpec, Params
from pipeline.query import ALL_NAMESPACES, DEFAULT_NAMESPACE_ONLY, Query
from pipeline.registry import register

__all__ = ["ALL_NAMESPACES", "DEFAULT_NAMESPACE_ONLY", "Context", "Counters", "JobSpec",
           "MapperError", "Params", "Query", "register"]
