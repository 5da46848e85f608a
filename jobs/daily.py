"""A date-range job for a daily scheduled run: by default, yesterday (UTC)."""
from __future__ import annotations

import datetime as dt

from pipeline import Context, JobSpec, Params, Query, register


@register
class CreatedBetween(JobSpec):
    """Entities whose ``created`` time falls in [from, to): a daily export's selection.

    from and to are dates (YYYY-MM-DD, UTC); from defaults to yesterday and to to
    the day after from, so a daily scheduled run needs no parameters. The range
    is an inequality filter, so the read is split on ``created``'s values, not
    keys. It yields one record per entity: key, created, category, and counts the entities
    per UTC day of their own ``created`` value (``day:YYYY-MM-DD``).
    """

    name = "created_between"
    yields_records = True
    parameters = {"kind": "the kind to read (default Item; A|B for several, * for every kind)",
                  "property": "the timestamp property (default created)",
                  "from": "first day, YYYY-MM-DD (default yesterday, UTC)",
                  "to": "day after the last, YYYY-MM-DD (default from + 1 day)"}

    def query(self, params: Params) -> Query:
        start = params.date("from", params.now.date() - dt.timedelta(days=1))
        end = params.date("to", start + dt.timedelta(days=1))
        self.prop = params.get("property", "created")
        midnight = dt.time(tzinfo=dt.timezone.utc)
        self.start = dt.datetime.combine(start, midnight)
        self.end = dt.datetime.combine(end, midnight)
        return Query(kind=params.kinds("kind", "Item"), keys_only=False,
                     filters=[(self.prop, ">=", self.start), (self.prop, "<", self.end)])

    def next(self, ctx: Context, entity):
        ctx.counters.inc("entities")
        created = entity.get(self.prop)
        if isinstance(created, list):  # a list property: the value that put it in the range
            created = min((v for v in created if self.start <= v < self.end), default=None)
        if created is not None:
            ctx.counters.inc(f"day:{created.astimezone(dt.timezone.utc).date().isoformat()}")
        yield {"key": list(entity.key.flat_path), "namespace": ctx.namespace,
               "created": entity.get(self.prop), "category": entity.get("category")}
