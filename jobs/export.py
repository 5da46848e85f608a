"""Exports: every key of a kind (or of several, or all) as a record; whole entities as
BigQuery-loadable rows."""
from __future__ import annotations

from pipeline import Context, JobSpec, Params, Query, register
from pipeline.core.export_format import NONFINITE_COUNTER, typed_row


@register
class ExportKeys(JobSpec):
    """One record per key of a kind: {"namespace": ..., "key": [kind, id or name, ...]}.

    Keys only, so it is cheap; with --output the records are written as JSON lines.
    """

    name = "export_keys"
    yields_records = True
    parameters = {"kind": "the kind to export (default Item; A|B for several, * for every kind)",
                  "full": "true: read full entities instead of keys only (default false)"}

    def query(self, params: Params) -> Query:
        full = params.flag("full", False)
        return Query(kind=params.kinds("kind", "Item"), keys_only=not full)

    def next(self, ctx: Context, item):
        key = getattr(item, "key", None) or item  # an entity, or a key
        ctx.counters.inc("keys")
        yield {"namespace": ctx.namespace, "key": list(key.flat_path), "range": ctx.range_id}


@register
class ExportEntities(JobSpec):
    """Full entities as BigQuery-loadable JSON lines, plus OUTPUT/JOB/schema.json for `bq load`.

    With several kinds (``kind=A|B``) or all of them (``kind=*``: an export of the whole
    database) each (namespace, kind) has its file, ``namespaces/NAMESPACE/KIND.jsonl``, and each
    kind its schema, ``schemas/KIND.json``: one BigQuery table per kind.

    One row per entity: ``__key__`` as a record {namespace, path: [{kind, id, name}], id, name},
    then every property (see ``pipeline.core.export_format`` for the conversion and for what
    happens to mixed types, names differing only in case and invalid column names). Floats
    that JSON cannot hold (NaN, inf) are written as null and counted as ``nonfinite_floats``.
    """

    name = "export_entities"
    yields_records = True
    parameters = {"kind": "the kind to export (default Item; A|B for several, * for every kind)"}
    typed_rows = True

    def query(self, params: Params) -> Query:
        return Query(kind=params.kinds("kind", "Item"), keys_only=False)

    def next(self, ctx: Context, entity):
        ctx.counters.inc("entities")
        yield typed_row(entity, lambda: ctx.counters.inc(NONFINITE_COUNTER))
