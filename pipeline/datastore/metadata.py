"""Datastore's metadata: the namespaces (``__namespace__``) and kinds (``__kind__``) there are."""
from __future__ import annotations

from typing import Iterator, Optional

from google.cloud import datastore

from pipeline.core.namespaces import is_reserved, namespace_label
from pipeline.core.retry import RetryPolicy
from pipeline.core.units import entity_kinds
from pipeline.datastore import retry
from pipeline.datastore.client import fetch


def namespace_of(key: datastore.Key) -> str:
    """__namespace__ keys: the default namespace is id 1 (emulator) or the empty name."""
    name = key.id_or_name
    return "" if name in (1, "") else str(name)


def list_namespaces(c: datastore.Client, policy: RetryPolicy, read_time=None) -> list[str]:
    """Every namespace with entities, sorted (``""`` is the default namespace)."""
    q = c.query(kind="__namespace__")
    q.keys_only()
    return sorted(namespace_of(e.key) for e in fetch(q, policy, read_time=read_time))


def iter_namespaces(c: datastore.Client, policy: RetryPolicy, read_time=None,
                    where: str = "Datastore") -> Iterator[str]:
    """Every namespace with entities, in the backend's key order, page by page: a listing of
    tens of thousands is streamed, never held. A transient error is retried from the cursor
    after the last page given, so no namespace is given twice."""
    cursor: list = [None]

    def pages():
        q = c.query(kind="__namespace__")
        q.keys_only()
        it = fetch(q, policy, start_cursor=cursor[0], read_time=read_time)
        for page in it.pages:
            names = [namespace_of(e.key) for e in page]
            cursor[0] = it.next_page_token  # set as the page is given: a retry starts after it
            yield names

    for names in retry.stream(pages, "listing namespaces", policy, where=where):
        yield from names


def list_kinds(c: datastore.Client, namespace: str, policy: RetryPolicy,
               read_time: Optional[object] = None) -> list[str]:
    """The entity kinds of a namespace, without Datastore's own ``__*__`` kinds (``__private``
    is an entity kind: only names starting and ending with ``__`` are Datastore's)."""
    q = c.query(kind="__kind__", namespace=namespace or None)
    q.keys_only()
    return entity_kinds(e.key.id_or_name for e in fetch(q, policy, read_time=read_time))


def kinds_of(c: datastore.Client, kinds: Optional[tuple], namespace: str, policy: RetryPolicy,
             read_time: Optional[object] = None) -> list[str]:
    """The kinds a query reads in a namespace: the ones it lists (``kinds``), or all of the
    namespace's (``kinds`` None: ALL_KINDS), listed from ``__kind__``."""
    if kinds is not None:
        return list(kinds)
    return list_kinds(c, namespace, policy, read_time)


def keys_left(c: datastore.Client, namespace: str, policy: RetryPolicy, limit: int,
              where: str = "Datastore") -> list[tuple]:
    """Up to ``limit`` keys (flat paths) of the entities ``namespace`` holds now, of any kind: a
    keys-only kindless query (no snapshot), Datastore's own ``__*__`` entities left out."""

    def listing() -> list[tuple]:
        q = c.query(namespace=namespace or None)
        q.keys_only()
        out: list = []
        for e in fetch(q, policy):
            if not is_reserved(e.key.kind):
                out.append(tuple(e.key.flat_path))
                if len(out) >= limit:
                    break
        return out

    return retry.call(listing, f"checking what namespace {namespace_label(namespace)} holds",
                      policy, where=where)
