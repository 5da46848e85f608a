"""Datastore's metadata: the namespaces (``__namespace__``) and kinds (``__kind__``) there are."""
from __future__ import annotations

from typing import Optional

from google.cloud import datastore

from pipeline.core.retry import RetryPolicy
from pipeline.core.units import entity_kinds
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


def list_kinds(c: datastore.Client, namespace: str, policy: RetryPolicy,
               read_time: Optional[object] = None) -> list[str]:
    """The entity kinds of a namespace, without Datastore's own ``__*__`` kinds."""
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
