"""Datastore's errors turned into messages that say what to do (a missing index gets the
``index.yaml`` entry to add)."""
from __future__ import annotations

from typing import Optional

from google.api_core import exceptions as gexc

from pipeline.api.query import ResolvedQuery
from pipeline.core.namespaces import namespace_label
from pipeline.errors import MapperError, QueryError


def index_yaml(rq: ResolvedQuery, sort_prop: Optional[str]) -> str:
    """The composite index a query needs: equality properties, then the sort property."""
    lines = ["indexes:", f"- kind: {rq.kind}"]
    if rq.ancestor:
        lines.append("  ancestor: yes")
    lines.append("  properties:")
    for prop, _ in rq.equalities:
        lines.append(f"  - name: {prop}")
    if sort_prop:
        lines.append(f"  - name: {sort_prop}")
    return "\n".join(lines)


def explain(err: Exception, rq: ResolvedQuery, namespace: str, what: str) -> MapperError:
    """Turn a client error into a message that says what to do."""
    ns = namespace_label(namespace)
    if isinstance(err, gexc.FailedPrecondition) and "index" in str(err).lower():
        sort_prop = rq.prop_range.prop if rq.prop_range else None
        return QueryError(
            f"{what} in namespace {ns} needs a composite index that the database lacks "
            f"({rq.describe()}). Add this entry to index.yaml and deploy it with "
            f"`gcloud datastore indexes create index.yaml`, then wait until it is serving:\n"
            f"{index_yaml(rq, sort_prop)}\n(Datastore said: {err.message})")
    if isinstance(err, (gexc.PermissionDenied, gexc.Unauthenticated)):
        return MapperError(f"{what} in namespace {ns}: access denied ({err.message}); the account "
                           "running the job needs the Datastore User role")
    if isinstance(err, gexc.NotFound):
        return MapperError(f"{what} in namespace {ns}: not found ({err.message}); check --project "
                           "and --database")
    if isinstance(err, gexc.InvalidArgument):
        return QueryError(f"{what} in namespace {ns} was rejected: {err.message}")
    return MapperError(f"{what} in namespace {ns} failed: {type(err).__name__}: {err}")
