"""What a job that writes back yields or returns: the mutations of the job API.

Two shapes (docs/write-back.md):

- **read-modify-write**: the job defines ``migrate(ctx, entity)`` and returns the entity as it
  should be (changed in place or a new one with the same key), ``DELETE``, or ``UNCHANGED``
  (``None`` means the same). In ``transactional`` mode the writer looks the entity up again in
  a transaction and applies ``migrate`` to that current version, so ``migrate`` must be
  idempotent: applied to an entity it already migrated, it must return it unchanged.
- **free mutations**: the job sets ``writes = True`` and ``next`` yields ``Put(entity)`` (of
  any kind and key, complete: ids allocated) and ``Delete(key)``; these are written blind, after
  a lookup of what was there (for the undo log).

Pure: no Google client is imported; entities and keys are google-cloud-datastore's objects.
"""
from __future__ import annotations

import dataclasses
from typing import Any


class _Marker:
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name

    def __reduce__(self):
        return (_marker, (self.name,))


def _marker(name: str) -> "_Marker":
    return {"DELETE": DELETE, "UNCHANGED": UNCHANGED}[name]


#: ``migrate`` returns this to delete the entity.
DELETE = _Marker("DELETE")
#: ``migrate`` returns this (or None) to leave the entity as it is.
UNCHANGED = _Marker("UNCHANGED")


@dataclasses.dataclass(frozen=True)
class Put:
    """Write ``entity`` (a ``google.cloud.datastore.Entity`` with a complete key)."""

    entity: Any


@dataclasses.dataclass(frozen=True)
class Delete:
    """Delete the entity of ``key`` (a complete ``google.cloud.datastore.Key``)."""

    key: Any


#: How a run writes (``--writes``): nothing unless asked.
DRY_RUN = "dry_run"
TRANSACTIONAL = "transactional"
BLIND = "blind"
WRITE_MODES = (DRY_RUN, TRANSACTIONAL, BLIND)
