"""Namespaces as people write and read them.

The default namespace is ``""`` inside the mapper and ``__default__`` everywhere a person sees it
(the command line, messages, logs, summaries, file names): Datastore reserves names of the form
``__*__``, so no real namespace can take that label.
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

#: Datastore reserves kind and namespace names that start *and* end with two underscores
#: (``__kind__``, ``__Stat_Kind__``, ``__default__``); ``__private``, ``_x``, ``__`` and
#: ``___`` are ordinary names (the emulator stores them, and refuses ``____`` and ``__x__``).
_RESERVED = re.compile(r"__.*__", re.DOTALL)

#: How the default namespace is written on the command line, in messages and in file names.
DEFAULT_NAMESPACE_NAME = "__default__"


def is_reserved(name: str) -> bool:
    """Whether Datastore reserves ``name`` as a kind or namespace: ``__*__``, both ends (at
    least four characters: ``__`` and ``___`` are not reserved)."""
    return bool(_RESERVED.fullmatch(name))


def namespace_label(ns: str) -> str:
    """A namespace as logs, messages, summaries and the command line name it."""
    return ns or DEFAULT_NAMESPACE_NAME


def normalise_namespaces(names: Iterable[str]) -> tuple[str, ...]:
    """Names as given (``__default__`` for the default namespace) -> the mapper's names
    (``""``), in order, without repeats."""
    return tuple(dict.fromkeys("" if n == DEFAULT_NAMESPACE_NAME else n for n in names))


def require_namespaces(wanted: Sequence[str], existing: Sequence[str]) -> None:
    """Listed namespaces must exist: a ValueError naming the missing ones and those found."""
    have = set(existing)
    missing = [n for n in wanted if n not in have]
    if not missing:
        return
    shown = ", ".join(namespace_label(n) for n in existing[:20])
    more = f" and {len(existing) - 20} more" if len(existing) > 20 else ""
    raise ValueError(f"namespace(s) not found: {', '.join(namespace_label(n) for n in missing)}; "
                     f"namespaces with entities: {shown or '(none)'}{more}")


def require_listed(wanted: Sequence[str], listing: Iterable[str], shown: int = 20) -> None:
    """``require_namespaces`` over a streamed listing: only the wanted names found and the
    first ``shown`` names (for the message) are kept."""
    want = set(wanted)
    found: set = set()
    first: list = []
    count = 0
    for ns in listing:
        count += 1
        if len(first) < shown:
            first.append(ns)
        if ns in want:
            found.add(ns)
    if len(found) == len(want):
        return
    missing = [n for n in wanted if n not in found]
    more = f" and {count - len(first)} more" if count > len(first) else ""
    raise ValueError(f"namespace(s) not found: {', '.join(namespace_label(n) for n in missing)}; "
                     f"namespaces with entities: "
                     f"{', '.join(namespace_label(n) for n in first) or '(none)'}{more}")
