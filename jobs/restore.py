"""Undoing a run that wrote back: its undo log put back, conditionally."""
from __future__ import annotations

from pipeline import ALL_KINDS, JobSpec, Params, Query, register
from pipeline.errors import UsageError


@register
class RestoreEntities(JobSpec):
    """Put back the entities a run changed or deleted, from its undo log (``from``: the
    ``undo_log`` its summary names, ``OUTPUT/JOB/runs/RUN/undo``), or a backup
    (``from=OUTPUT/backup_entities/namespaces``). An entity is restored only where it is still
    what that run wrote (for a backup: where it is missing); one changed since is left as it is
    and reported (the dead-letter file, ``writes.changed_since``). A dry run unless --writes
    says otherwise; a restore has its own undo log."""

    name = "restore_entities"
    parameters = {"from": "what to put back: a run's undo directory, or a backup_entities "
                          "output's namespaces directory (required)"}
    path_parameters = ("from",)
    writes = True
    reads_undo_log = True

    def query(self, params: Params) -> Query:
        location = params.get("from")
        if not location:
            raise UsageError("job parameter from is required: the undo log of the run to undo "
                             "(its summary's undo_log, OUTPUT/JOB/runs/RUN/undo)")
        self.undo_location = location.rstrip("/")
        return Query(kind=ALL_KINDS, keys_only=False)  # not queried: the undo log drives it
