"""Schema migrations and deletes: jobs that write back to Datastore (``--writes``).

Each is read-modify-write (``migrate``): in ``--writes=transactional`` it is applied again to
the current version of each entity, inside the transaction, so it is idempotent: run twice, the
second run changes nothing. Without ``--writes`` a run is a dry run (nothing is written).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from pipeline import DELETE, UNCHANGED, Context, JobSpec, Params, Query, register
from pipeline.api.query import resolve
from pipeline.core import booleans
from pipeline.core.matching import matches
from pipeline.errors import UsageError

KIND_HELP = "the kind (default Item; A|B for several, * for every kind)"
TYPES = ("string", "int", "float", "bool", "timestamp", "null")


def typed_value(text: str, type_name: str) -> Any:
    """A parameter's text as the property value of ``type_name``; UsageError says why not."""
    try:
        if type_name == "string":
            return text
        if type_name == "int":
            return int(text)
        if type_name == "float":
            return float(text)
        if type_name == "bool":
            try:
                return booleans.parse_bool(text)
            except ValueError:
                raise ValueError(booleans.ACCEPTED) from None
        if type_name == "timestamp":
            v = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            if v.tzinfo is None:
                raise ValueError("a time zone (e.g. 2026-11-27T00:00:00Z)")
            return v
        if type_name == "null":
            return None
    except ValueError as e:
        raise UsageError(f"value {text!r} is not a {type_name}: {e}") from None
    raise UsageError(f"type {type_name!r} is not one of {', '.join(TYPES)}")


def _property(params: Params, name: str) -> str:
    value = params.get(name)
    if not value:
        raise UsageError(f"job parameter {name} (a property name) is required")
    return value


@register
class SetProperty(JobSpec):
    """Set a property to one value on every entity of the kind (``property``, ``value``,
    ``type``: string, int, float, bool, timestamp or null; ``indexed=false`` excludes it from
    the indexes). Entities that already hold that value are left alone (not written)."""

    name = "set_property"
    parameters = {"kind": KIND_HELP, "property": "the property to set (required)",
                  "value": "its value, as text (required unless type=null)",
                  "type": f"the value's type: {', '.join(TYPES)} (default string)",
                  "indexed": "false: exclude the property from the indexes (default true)"}

    def query(self, params: Params) -> Query:
        self.prop = _property(params, "property")
        type_name = params.get("type", "string")
        if type_name != "null" and params.get("value") is None:
            raise UsageError("job parameter value is required (or type=null)")
        self.value = typed_value(params.get("value", ""), type_name)
        self.indexed = params.flag("indexed", True)
        return Query(kind=params.kinds("kind", "Item"), keys_only=False)

    def migrate(self, ctx: Context, entity):
        excluded = self.prop in entity.exclude_from_indexes
        if (self.prop in entity and type(entity[self.prop]) is type(self.value)
                and entity[self.prop] == self.value and excluded != self.indexed):
            return UNCHANGED
        entity[self.prop] = self.value
        if self.indexed:
            entity.exclude_from_indexes.discard(self.prop)
        else:
            entity.exclude_from_indexes.add(self.prop)
        return entity


@register
class RenameProperty(JobSpec):
    """Rename a property (``from`` -> ``to``), keeping its value and whether it is indexed.
    An entity that already has ``to`` with another value is not changed: it becomes a dead
    letter (nothing is overwritten), so pass --max_errors to let the run go on."""

    name = "rename_property"
    parameters = {"kind": KIND_HELP, "from": "the property's current name (required)",
                  "to": "its new name (required)"}

    def query(self, params: Params) -> Query:
        self.old, self.new = _property(params, "from"), _property(params, "to")
        if self.old == self.new:
            raise UsageError(f"from and to are both {self.old!r}: nothing to rename")
        return Query(kind=params.kinds("kind", "Item"), keys_only=False)

    def migrate(self, ctx: Context, entity):
        if self.old not in entity:
            return UNCHANGED  # already renamed (or never had it): idempotent
        value = entity[self.old]
        if self.new in entity and entity[self.new] != value:
            raise ValueError(f"the entity has both {self.old!r} and {self.new!r}, with "
                             f"different values: renaming would overwrite {self.new!r}")
        excluded = self.old in entity.exclude_from_indexes
        del entity[self.old]
        entity.exclude_from_indexes.discard(self.old)
        entity[self.new] = value
        if excluded:
            entity.exclude_from_indexes.add(self.new)
        else:
            entity.exclude_from_indexes.discard(self.new)
        return entity


@register
class RemoveProperty(JobSpec):
    """Remove a property from every entity of the kind that has it."""

    name = "remove_property"
    parameters = {"kind": KIND_HELP, "property": "the property to remove (required)"}

    def query(self, params: Params) -> Query:
        self.prop = _property(params, "property")
        return Query(kind=params.kinds("kind", "Item"), keys_only=False)

    def migrate(self, ctx: Context, entity):
        if self.prop not in entity:
            return UNCHANGED
        del entity[self.prop]
        entity.exclude_from_indexes.discard(self.prop)
        return entity


@register
class DeleteEntities(JobSpec):
    """Delete the entities of the kind (``kind=*``: every kind; with --namespaces, a tenant's
    whole data) that match the filters: ``property`` = ``value`` (of ``type``), and
    ``before``/``after`` (RFC 3339) on ``time_property`` (default created). ``kind=*`` with no
    filter, written for real, ends by checking each namespace read holds no entity of any kind
    (the summary says so, or names what is left and the run fails). In
    --writes=transactional each entity is checked against the filters again, as it is in the
    transaction: one changed since the read so that it no longer matches is not deleted."""

    name = "delete_entities"
    parameters = {"kind": KIND_HELP,
                  "property": "delete only entities whose property equals value",
                  "value": "the value property must equal, as text",
                  "type": f"the value's type: {', '.join(TYPES[:-1])} (default string)",
                  "time_property": "the timestamp property of before/after (default created)",
                  "before": "delete only entities with time_property < this time (RFC 3339)",
                  "after": "delete only entities with time_property >= this time (RFC 3339)"}

    def query(self, params: Params) -> Query:
        filters = []
        prop = params.get("property")
        if prop:
            if params.get("value") is None:
                raise UsageError("job parameter value is required with property")
            filters.append((prop, "=", typed_value(params["value"], params.get("type",
                                                                               "string"))))
        elif params.get("value") is not None:
            raise UsageError("job parameter value needs property (the property to compare)")
        tprop = params.get("time_property", "created")
        if params.get("after"):
            filters.append((tprop, ">=", typed_value(params["after"], "timestamp")))
        if params.get("before"):
            filters.append((tprop, "<", typed_value(params["before"], "timestamp")))
        query = Query(kind=params.kinds("kind", "Item"), keys_only=False, filters=filters)
        self.resolved = resolve(query)  # its filters, checked again in the transaction
        # kind=* with no filter erases the namespaces read: the run checks they are empty.
        self.empties_namespaces = self.resolved.kinds is None and not filters
        return query

    def migrate(self, ctx: Context, entity):
        if not ctx.transaction:
            return DELETE  # the query matched it
        rq = self.resolved
        return DELETE if matches(entity, rq.equalities, rq.prop_range) else UNCHANGED
