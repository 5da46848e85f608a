"""A lossless backup of whole entities, which ``restore_entities`` puts back.

Unlike ``export_entities`` (BigQuery's JSON, which loses types, index exclusions and key
paths), each record is the entity protobuf's JSON, in the undo log's record format (``mode``
``backup``), one file per (namespace, kind) under ``OUTPUT/backup_entities/namespaces/``.
``restore_entities --params from=OUTPUT/backup_entities/namespaces`` restores it: an entity
that is missing is put back, one that is as in the backup is left alone, one that differs is
not overwritten but reported (a dead letter with the backup's version).
"""
from __future__ import annotations

from pipeline import Context, JobSpec, Params, Query, register

BACKUP = "backup"


@register
class BackupEntities(JobSpec):
    """Back up every entity of the kinds (default ``*``: every kind) losslessly: keys, value
    types, exclude-from-indexes, nested entities. Restore with ``restore_entities
    --params from=OUTPUT/backup_entities/namespaces`` (it puts back what is missing and
    reports, without overwriting, what differs)."""

    name = "backup_entities"
    parameters = {"kind": "the kind (default *: every kind; A|B for several)"}

    def query(self, params: Params) -> Query:
        return Query(kind=params.kinds("kind", "*"), keys_only=False)

    def next(self, ctx: Context, entity):
        # Imported here: the Google client's protobuf helpers stay off --list_jobs and --help.
        from pipeline.datastore import entity_json as ej
        yield {"job": ctx.job, "run": None, "mode": BACKUP, "namespace": ctx.namespace,
               "kind": ctx.kind, "key": ej.key_to_json(entity.key),
               "before": ej.entity_to_json(entity), "after_sha256": None, "time": None}
