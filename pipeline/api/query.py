"""What a job asks to read: one kind, several or all of them, some namespaces, filters, an
ancestor.

A job builds a ``Query`` from its parameters; ``resolve`` checks it once, when
the pipeline is built, and turns it into the plain data workers read with. Each
(namespace, kind) is then split and read on its own.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence, Tuple, Union

from pipeline.core.keyorder import KeyPath, path_from_flat
from pipeline.core.namespaces import is_reserved, normalise_namespaces
from pipeline.core.values import (
    UnsupportedValue,
    describe_value,
    parse_bound,
    value_sort_key,
    value_type,
)
from pipeline.errors import QueryError

ALL_NAMESPACES: Optional[Tuple[str, ...]] = None
DEFAULT_NAMESPACE_ONLY: Tuple[str, ...] = ("",)


class _AllKinds:
    """Every kind of each namespace read (listed from ``__kind__``, Datastore's own ``__*__``
    kinds left out), each queried on its own."""

    def __repr__(self) -> str:
        return "ALL_KINDS"

    def __reduce__(self):
        return (_all_kinds, ())


def _all_kinds() -> "_AllKinds":
    return ALL_KINDS


ALL_KINDS = _AllKinds()
#: How a kind parameter (and ``Query.kind``) says every kind: ``kind=*``.
ALL_KINDS_TEXT = "*"

EQUALITY_OPS = ("=", "==")
INEQUALITY_OPS = ("<", "<=", ">", ">=")


@dataclasses.dataclass(frozen=True)
class Query:
    """The entities a job reads.

    kind: the entity kind, a list of kinds, or ``ALL_KINDS`` (also written ``"*"``): every kind
        of each namespace read. Each (namespace, kind) is split and read on its own.
    namespaces: ``ALL_NAMESPACES`` (None, the default), ``DEFAULT_NAMESPACE_ONLY``,
        or a sequence of names ("" is the default namespace).
    filters: (property, op, value) triples; op is one of = < <= > >=. Equality
        filters on any properties; inequalities on one property at most (the
        read is then split on that property's value range).
    ancestor: a flat key path such as ("Customer", "c1"): only its descendants.
    keys_only: True (the default, cheaper) passes keys to ``next``; False passes
        full entities.
    """

    kind: Union[str, Sequence[str], _AllKinds]
    namespaces: Optional[Sequence[str]] = ALL_NAMESPACES
    filters: Sequence[Tuple[str, str, Any]] = ()
    ancestor: Optional[Sequence[Any]] = None
    keys_only: bool = True


@dataclasses.dataclass(frozen=True)
class PropertyRange:
    """The query's inequality: lo <(=) prop <(=) hi; a None bound is open."""

    prop: str
    lo: Any = None
    lo_inclusive: bool = True
    hi: Any = None
    hi_inclusive: bool = False


@dataclasses.dataclass(frozen=True)
class ResolvedQuery:
    """A job's ``Query`` checked and normalised once, at launch: the plain data workers read
    with (``namespaces`` None means every namespace; ``""`` is the default one)."""

    kinds: Optional[Tuple[str, ...]]  # None: every kind of each namespace
    namespaces: Optional[Tuple[str, ...]]
    equalities: Tuple[Tuple[str, Any], ...]
    prop_range: Optional[PropertyRange]
    ancestor: Optional[KeyPath]
    keys_only: bool

    @property
    def per_kind(self) -> bool:
        """Several kinds (or all): outputs are per (namespace, kind), not per namespace."""
        return self.kinds is None or len(self.kinds) > 1

    def kinds_text(self) -> str:
        if self.kinds is None:
            return "every kind"
        return ("kind " if len(self.kinds) == 1 else "kinds ") + ", ".join(self.kinds)

    def describe(self) -> str:
        parts = [self.kinds_text()]
        for prop, value in self.equalities:
            parts.append(f"{prop} = {describe_value(value)}")
        r = self.prop_range
        if r is not None:
            if r.lo is not None:
                parts.append(f"{r.prop} {'>=' if r.lo_inclusive else '>'} {describe_value(r.lo)}")
            if r.hi is not None:
                parts.append(f"{r.prop} {'<=' if r.hi_inclusive else '<'} {describe_value(r.hi)}")
        if self.ancestor:
            parts.append(f"ancestor {self.ancestor!r}")
        return ", ".join(parts) + (" (keys only)" if self.keys_only else " (full entities)")

    def fingerprint(self) -> dict:
        """The query as plain JSON, equal for equal queries (a resumed run must read the same)."""
        r = self.prop_range
        return {"kinds": None if self.kinds is None else list(self.kinds),
                "namespaces": None if self.namespaces is None else list(self.namespaces),
                "equalities": [[p, repr(v)] for p, v in self.equalities],
                "prop_range": None if r is None else {
                    "prop": r.prop, "lo": repr(r.lo), "lo_inclusive": r.lo_inclusive,
                    "hi": repr(r.hi), "hi_inclusive": r.hi_inclusive},
                "ancestor": None if self.ancestor is None else [list(e) for e in self.ancestor],
                "keys_only": self.keys_only}

    def with_namespaces(self, names) -> "ResolvedQuery":
        """The query over other namespaces (``--namespaces``), normalised as ``Query``'s are."""
        return dataclasses.replace(self, namespaces=normalise_namespaces(names))


def _namespaces(value: Optional[Sequence[str]]) -> Optional[Tuple[str, ...]]:
    if value is None:
        return None
    if isinstance(value, str):
        raise QueryError(f"Query.namespaces must be a list of names, not the string {value!r}")
    names = normalise_namespaces(value)
    if not names:
        raise QueryError("Query.namespaces is empty: use ALL_NAMESPACES (None) for every namespace")
    return names


def _kinds(value) -> Optional[Tuple[str, ...]]:
    """One kind, a list, or ALL_KINDS ("*") -> the kinds (None: all), checked."""
    if value is ALL_KINDS or value == ALL_KINDS_TEXT:
        return None
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names:
        raise QueryError("Query.kind must name an entity kind, a list of kinds, or ALL_KINDS")
    out = []
    for kind in names:
        if kind is ALL_KINDS or kind == ALL_KINDS_TEXT:
            raise QueryError(f"Query.kind {list(names)!r}: '*' (every kind) cannot be combined "
                             "with kind names; give '*' alone, or the kinds")
        if not kind or not isinstance(kind, str):
            raise QueryError(f"Query.kind {list(names)!r}: {kind!r} does not name an entity kind")
        if is_reserved(kind):  # Datastore reserves __*__ (both ends): __private is a kind
            raise QueryError(f"kind {kind!r} is a Datastore metadata kind, not an entity kind")
        out.append(kind)
    return tuple(dict.fromkeys(out))


def resolve(query: Query) -> ResolvedQuery:
    """Check a job's query and normalise it; every problem is a QueryError."""
    if not isinstance(query, Query):
        raise QueryError(f"a job's query() must return pipeline.Query, got {type(query).__name__}")
    kinds = _kinds(query.kind)
    equalities = []
    inequalities: dict[str, list] = {}
    for f in query.filters:
        if not (isinstance(f, (tuple, list)) and len(f) == 3):
            raise QueryError(f"filter {f!r} must be a (property, op, value) triple")
        prop, op, value = f
        if op in EQUALITY_OPS:
            equalities.append((prop, value))
        elif op in INEQUALITY_OPS:
            inequalities.setdefault(prop, []).append((op, value))
        else:
            raise QueryError(
                f"filter {prop} {op} {value!r}: operator {op!r} is not supported; "
                f"use one of {', '.join(EQUALITY_OPS[:1] + INEQUALITY_OPS)}")
    if len(inequalities) > 1:
        raise QueryError(
            "inequality filters on more than one property "
            f"({', '.join(sorted(inequalities))}): Datastore sorts a query with an inequality on "
            "that property, so only one property may have inequalities; filter the others in "
            "the job's next()")
    prop_range = None
    for prop, conds in inequalities.items():
        if prop == "__key__":
            raise QueryError("inequality filters on __key__ are not supported: the mapper "
                             "splits the key space itself")
        r = PropertyRange(prop=prop)
        for op, value in conds:
            try:
                value_type(value)
            except UnsupportedValue as e:
                raise QueryError(f"filter {prop} {op} {value!r}: {e}") from None
            value = parse_bound(value)
            if op in (">", ">="):
                if r.lo is not None:
                    raise QueryError(f"two lower bounds on {prop}")
                r = dataclasses.replace(r, lo=value, lo_inclusive=op == ">=")
            else:
                if r.hi is not None:
                    raise QueryError(f"two upper bounds on {prop}")
                r = dataclasses.replace(r, hi=value, hi_inclusive=op == "<=")
        if r.lo is not None and r.hi is not None:
            if value_type(r.lo) != value_type(r.hi):
                raise QueryError(f"the bounds on {prop} have different types: {r.lo!r}, {r.hi!r}")
            lo_k, hi_k = value_sort_key(r.lo), value_sort_key(r.hi)
            if lo_k > hi_k or (lo_k == hi_k and not (r.lo_inclusive and r.hi_inclusive)):
                raise QueryError(f"the range on {prop} is empty: nothing is "
                                 f"{'>=' if r.lo_inclusive else '>'} {r.lo!r} and "
                                 f"{'<=' if r.hi_inclusive else '<'} {r.hi!r}")
        prop_range = r
    ancestor = None
    if query.ancestor is not None:
        try:
            ancestor = path_from_flat(tuple(query.ancestor))
        except ValueError as e:
            raise QueryError(f"Query.ancestor: {e}; give a flat path like ('Parent', 'p1')") from None
    return ResolvedQuery(
        kinds=kinds,
        namespaces=_namespaces(query.namespaces),
        equalities=tuple(equalities),
        prop_range=prop_range,
        ancestor=ancestor,
        keys_only=bool(query.keys_only),
    )
