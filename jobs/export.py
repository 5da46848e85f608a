"""Export every key of a kind as a record: namespace and key path."""
from __future__ import annotations

from pipeline import Context, JobSpec, Params, Query, register


@register
class ExportKeys(JobSpec):
    """One record per key of a kind: {"namespace": ..., "key": [kind, id or name, ...]}.

    Keys only, so it is cheap; with --output the records are written as JSON lines.
    """

    name = "export_keys"
    parameters = {"kind": "the kind to export (default Item)",
                  "full": "true: read full entities instead of keys only (default false)"}

    def query(self, params: Params) -> Query:
        full = params.get("full", "false").lower() == "true"
        return Query(kind=params.get("kind", "Item"), keys_only=not full)

    def next(self, ctx: Context, item):
        key = getattr(item, "key", None) or item  # an entity, or a key
        ctx.counters.inc("keys")
        yield {"namespace": ctx.namespace, "key": list(key.flat_path), "range": ctx.range_id}
