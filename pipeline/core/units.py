"""The unit of splitting, reading, output and completion: one kind in one namespace.

A job reading one kind has one unit per namespace and keeps the per-namespace layout
(``namespaces/acme.jsonl``); a job reading several kinds, or all, has one unit per
(namespace, kind), each split and read on its own, with a file each
(``namespaces/acme/Order.jsonl``).

A unit carries ``part``, the path of its output under ``namespaces/`` (without the suffix) and
the stem of its range ids (``acme#3``, ``acme/Order#3``): names as they are where a file system
takes them, escaped where it would not (see ``path_part``).
"""
from __future__ import annotations

import hashlib
import re
from typing import Iterable, NamedTuple

from pipeline.core.namespaces import is_reserved, namespace_label

#: Characters a name keeps in a path: letters, digits, dot, dash, underscore.
_SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,199}")


class Unit(NamedTuple):
    namespace: str
    kind: str
    part: str  # the output's path under namespaces/, without the suffix

    @property
    def label(self) -> str:
        """For messages and summaries: ``acme`` or ``acme/Order``."""
        return self.part


def entity_kinds(names: Iterable) -> list[str]:
    """A ``__kind__`` listing -> the entity kinds in it, sorted: Datastore's own kinds
    (``__*__``, starting *and* ending with two underscores: ``__Stat_Kind__``,
    ``__namespace__``, ...) are not entity kinds a job reads, and a kindless query would return
    them too, which is why kinds are read one by one. ``__private``, ``_x`` or ``__`` are
    ordinary kinds: read like any other."""
    return sorted({str(n) for n in names if not is_reserved(str(n))})


#: How much of an escaped name a part keeps (for people; the digest tells names apart), and the
#: digest's length: ``ESCAPED_KEPT + 1 + 64`` characters at most, well under the 255 bytes of a
#: file name with a suffix.
ESCAPED_KEPT = 120


def path_part(name: str, case_insensitive: bool = False) -> str:
    """A namespace label or kind name as one path component, the same on every worker, and never
    the same for two names.

    - *Safe* names (letters, digits, ``.``, ``-`` and ``_``, not starting with ``.`` or ``-``,
      at most 200 characters) stay as they are.
    - Any other name (``/``, ``~``, ``%``, non-ASCII, spaces, longer, ...) is *escaped*: those
      characters kept, ``%`` plus the hex of each UTF-8 byte for the rest, cut to
      ``ESCAPED_KEPT`` characters, then ``~`` and the SHA-256 of the whole name (64 hex
      digits).

    Why no two names share a part: a safe part never holds ``~`` (it is not in the safe set) and
    an escaped part always does, so a safe name never equals another name's escaped form; two
    escaped parts end with the full SHA-256 of their names, so they are equal only for one name
    (or a SHA-256 collision), however long the names and wherever they differ (the kept prefix
    is only for people). On a case-insensitive file system (``case_insensitive``) a name with an
    upper-case letter is escaped too, so ``Order`` and ``order`` never share a file there: what
    stays as it is has no upper-case letter, and the digests are lower-case hex, which folding
    case leaves as they are. (A namespace is at most 100 of ``[0-9A-Za-z._-]``, Datastore
    refuses others, measured on the emulator: one is escaped only for a leading ``.`` or ``-``
    or a capital, and never cut. Kinds may be any text up to 1,500 bytes.)
    """
    if _SAFE.fullmatch(name) and not (case_insensitive and name != name.lower()):
        return name
    escaped = "".join(ch if _SAFE.fullmatch(ch) or (ch in ".-" and i) else
                      "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
                      for i, ch in enumerate(name))
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
    return f"{escaped[:ESCAPED_KEPT]}~{digest}"


def unit_for(namespace: str, kind: str, per_kind: bool, case_insensitive: bool = False) -> Unit:
    """The unit of ``kind`` in ``namespace``: per namespace (one kind read) or per kind."""
    ns_part = path_part(namespace_label(namespace), case_insensitive)
    if not per_kind:
        return Unit(namespace, kind, ns_part)
    return Unit(namespace, kind, f"{ns_part}/{path_part(kind, case_insensitive)}")
