"""Datastore's errors turned into messages that say what to do (a missing index gets the
``index.yaml`` entry to add)."""
from __future__ import annotations

import json
from typing import Optional

from google.api_core import exceptions as gexc

from pipeline.api.query import ResolvedQuery
from pipeline.core.namespaces import namespace_label
from pipeline.core.terminal import is_safe
from pipeline.errors import MapperError, QueryError


def _yaml_name(name: str) -> str:
    """A kind or property name for index.yaml: as it is, or, holding a control character, as a
    double-quoted YAML (JSON) string, so the block stays lines of our own."""
    return name if is_safe(name) else json.dumps(name)


def index_yaml(rq: ResolvedQuery, sort_prop: Optional[str], kind: str) -> str:
    """The composite index a query of ``kind`` needs: equality properties, then the sort
    property."""
    lines = ["indexes:", f"- kind: {_yaml_name(kind)}"]
    if rq.ancestor:
        lines.append("  ancestor: yes")
    lines.append("  properties:")
    for prop, _ in rq.equalities:
        lines.append(f"  - name: {_yaml_name(prop)}")
    if sort_prop:
        lines.append(f"  - name: {_yaml_name(sort_prop)}")
    return "\n".join(lines)


def missing_indexes(rq: ResolvedQuery, kinds: list) -> QueryError:
    """The read query needs a composite index for several kinds: one message naming them all,
    with the index.yaml that adds every one."""
    sort_prop = rq.prop_range.prop if rq.prop_range else None
    entries = "\n".join(index_yaml(rq, sort_prop, k).split("\n", 1)[1] for k in kinds)
    return QueryError(
        f"the read query ({rq.describe()}) needs a composite index per kind, and the database "
        f"lacks one for the kinds {', '.join(kinds)}. Add these entries to index.yaml and deploy "
        f"them with `gcloud datastore indexes create index.yaml`, then wait until they are "
        "serving:", detail=f"indexes:\n{entries}")


def explain(err: Exception, rq: ResolvedQuery, namespace: str, what: str,
            kind: Optional[str] = None) -> MapperError:
    """Turn a client error (of a query of ``kind``) into a message that says what to do."""
    ns = namespace_label(namespace)
    if isinstance(err, gexc.FailedPrecondition) and "index" in str(err).lower():
        sort_prop = rq.prop_range.prop if rq.prop_range else None
        kind = kind or (rq.kinds[0] if rq.kinds and len(rq.kinds) == 1 else "KIND")
        return QueryError(
            f"{what} in namespace {ns} needs a composite index that the database lacks "
            f"(kind {kind}: {rq.describe()}). Add this entry to index.yaml and deploy it with "
            f"`gcloud datastore indexes create index.yaml`, then wait until it is serving:",
            detail=f"{index_yaml(rq, sort_prop, kind)}\n(Datastore said: {err.message})")
    if isinstance(err, (gexc.PermissionDenied, gexc.Unauthenticated)):
        return MapperError(f"{what} in namespace {ns}: access denied ({err.message}); the account "
                           "running the job needs the Datastore User role")
    if isinstance(err, gexc.NotFound):
        return MapperError(f"{what} in namespace {ns}: not found ({err.message}); check --project "
                           "and --database")
    if isinstance(err, gexc.InvalidArgument):
        return QueryError(f"{what} in namespace {ns} was rejected: {err.message}")
    return MapperError(f"{what} in namespace {ns} failed: {type(err).__name__}: {err}")
