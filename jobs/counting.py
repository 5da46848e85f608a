"""Counting jobs: keys only, and full entities by a property's value."""
from __future__ import annotations

from pipeline import Context, JobSpec, Params, Query, register


@register
class CountKeys(JobSpec):
    """Count every key of a kind (keys only), by id type and by whether it has a parent.

    Counters: ``keys``, ``int_ids``, ``names``, ``children`` (keys with a parent),
    and with by_parent=true one ``parent:<Kind>`` counter per parent kind.
    """

    name = "count_keys"
    parameters = {"kind": "the kind to count (default Item; A|B for several, * for every kind)",
                  "by_parent": "true: also count children per parent kind (default false)"}

    def query(self, params: Params) -> Query:
        self.by_parent = params.flag("by_parent", False)
        return Query(kind=params.kinds("kind", "Item"))

    def next(self, ctx: Context, key) -> None:
        c = ctx.counters
        c.inc("keys")
        path = key.flat_path  # (Key.id, .parent and .kind deep-copy the path: per entity)
        c.inc("int_ids" if isinstance(path[-1], int) else "names")
        if len(path) > 2:
            c.inc("children")
            if self.by_parent:
                c.inc(f"parent:{path[-4]}")


@register
class CountByProperty(JobSpec):
    """Count full entities by the value of one property (``value:<v>`` counters).

    Entities without the property count as ``missing``; list values count each element.
    """

    name = "count_by_property"
    parameters = {"kind": "the kind to read (default Item; A|B for several, * for every kind)",
                  "property": "the property whose values are counted (default category)"}

    def query(self, params: Params) -> Query:
        self.prop = params.get("property", "category")
        return Query(kind=params.kinds("kind", "Item"), keys_only=False)

    def next(self, ctx: Context, entity) -> None:
        c = ctx.counters
        c.inc("entities")
        if self.prop not in entity:
            c.inc("missing")
            return
        value = entity[self.prop]
        for v in value if isinstance(value, list) else [value]:
            c.inc(f"value:{v}")
