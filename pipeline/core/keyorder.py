"""Datastore key paths and the backend's ``__key__`` order, as pure functions.

Key ranges are cut from sampled keys, so the sort order we use must agree with
the order the backend applies to ``__key__`` filters: if it did not, two adjacent
ranges could overlap (entities read twice) or leave a gap (entities lost).

Datastore compares keys path element by element (an ancestor before its
descendants), each element by kind, then id before name, ids numerically.
Strings (kinds and names) are compared by their encoded bytes, and the encoding
differs: production Datastore (Firestore in Datastore mode) orders UTF-8 bytes,
which is Python's code point order, while the Cloud Datastore emulator (Java)
orders UTF-16 code units, which puts characters outside the Basic Multilingual
Plane (emoji, ...) *before* U+E000..U+FFFF. ``tests/emulator/test_keyorder.py``
checks the emulator's order against ours.
"""
from __future__ import annotations

import enum
from typing import Any, Iterable, Sequence, Tuple, Union

IdOrName = Union[int, str]
#: A key path: ((kind, id_or_name), ...), root first. Hashable and picklable,
#: unlike the client's Key objects, so it travels in restrictions cheaply.
KeyPath = Tuple[Tuple[str, IdOrName], ...]


class StringOrder(str, enum.Enum):
    """How the backend compares strings inside keys."""

    UTF8 = "utf8"  # production: UTF-8 byte order == code point order
    UTF16 = "utf16"  # the Cloud Datastore emulator: UTF-16 code unit order


def default_string_order(emulator_host: str | None) -> StringOrder:
    return StringOrder.UTF16 if emulator_host else StringOrder.UTF8


def _str_key(s: str, order: StringOrder) -> Any:
    if order is StringOrder.UTF16:
        return s.encode("utf-16-be", "surrogatepass")
    return s  # Python compares str by code point, the same as UTF-8 bytes


def sort_key(path: KeyPath, order: StringOrder = StringOrder.UTF8) -> tuple:
    """A tuple that sorts like the backend sorts the keys (shorter prefix first)."""
    out = []
    for kind, ident in path:
        if isinstance(ident, int):
            out.append((_str_key(kind, order), 0, ident, b"" if order is StringOrder.UTF16 else ""))
        else:
            out.append((_str_key(kind, order), 1, 0, _str_key(ident, order)))
    return tuple(out)


def compare(a: KeyPath, b: KeyPath, order: StringOrder = StringOrder.UTF8) -> int:
    ka, kb = sort_key(a, order), sort_key(b, order)
    return (ka > kb) - (ka < kb)


def sorted_paths(paths: Iterable[KeyPath], order: StringOrder = StringOrder.UTF8) -> list[KeyPath]:
    return sorted(set(paths), key=lambda p: sort_key(p, order))


def path_from_flat(flat: Sequence[IdOrName]) -> KeyPath:
    """(kind, id, kind, name, ...) as the client's ``Key.flat_path`` gives it."""
    if len(flat) % 2:
        raise ValueError(f"incomplete key path {flat!r}")
    return tuple((str(flat[i]), flat[i + 1]) for i in range(0, len(flat), 2))


def flat_from_path(path: KeyPath) -> tuple:
    return tuple(x for element in path for x in element)


def format_path(path: KeyPath | None) -> str:
    """Readable key for messages and logs: Parent('p1')/Item(42)."""
    if path is None:
        return "-"
    return "/".join(f"{kind}({ident!r})" for kind, ident in path)
