"""After a tenant erase: what the namespaces it emptied still hold.

A job that deletes every entity of every kind it reads (``JobSpec.empties_namespaces``:
``delete_entities kind=*`` with no filter) ends, when it wrote (not a dry run), with a keys-only
kindless query over each namespace read. Datastore's own ``__*__`` entities (statistics) are
left out; anything else is an entity the erase left behind (one created while it ran, one it
failed on, a kind it did not list). The summary's ``erase`` says the namespaces hold no entity
of any kind, or names what is left (kinds with counts, a few keys), and the run fails.

Pure: the query is ``pipeline.datastore.metadata.keys_left``, the step ``pipeline.graph.erase``.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

from pipeline.core.keyorder import format_path, path_from_flat

#: Keys looked at per namespace: counts beyond it are "at least".
LEFT_LIMIT = 1000
#: Keys named per namespace in the summary and the failure.
SAMPLE_KEYS = 5
#: Namespaces named in the failure message (summary.json has them all).
SHOWN_NAMESPACES = 5


def left_in_namespace(keys: Sequence[Sequence], limit: int = LEFT_LIMIT) -> dict:
    """The keys (flat paths) a namespace still holds, as its ``erase.left`` entry: how many
    (``at_least`` when the look-up stopped at ``limit``), how many per kind, a few keys."""
    kinds: dict = {}
    for flat in keys:
        kinds[str(flat[-2])] = kinds.get(str(flat[-2]), 0) + 1
    return {"entities": len(keys), "at_least": len(keys) >= limit,
            "kinds": dict(sorted(kinds.items())),
            "sample": [format_path(path_from_flat(flat)) for flat in keys[:SAMPLE_KEYS]]}


def erase_section(left: Mapping[str, Sequence[Sequence]], limit: int = LEFT_LIMIT) -> dict:
    """namespace label -> the keys it still holds (empty: erased) -> the summary's ``erase``:
    ``checked`` (namespaces), ``left`` (label -> ``left_in_namespace``, only those not empty)."""
    return {"checked": len(left),
            "left": {ns: left_in_namespace(keys, limit)
                     for ns, keys in sorted(left.items()) if keys}}


def _count(entry: dict) -> str:
    n = entry["entities"]
    return f"{'at least ' if entry['at_least'] else ''}{n} entit{'y' if n == 1 else 'ies'}"


def _left_text(ns: str, entry: dict) -> str:
    kinds = ", ".join(f"{k} {n}" for k, n in entry["kinds"].items())
    return (f"namespace {ns} still holds {_count(entry)} ({kinds}; e.g. "
            f"{', '.join(entry['sample'])})")


def erase_failure(section: Optional[dict]) -> Optional[str]:
    """Why an erase failed (what it left, the first namespaces named), or None."""
    left = (section or {}).get("left") or {}
    if not left:
        return None
    shown = list(left.items())[:SHOWN_NAMESPACES]
    more = (f"; and {len(left) - len(shown)} more namespaces (summary.json names them)"
            if len(left) > len(shown) else "")
    return ("the erase is not complete: "
            + "; ".join(_left_text(ns, e) for ns, e in shown) + more)


def erase_lines(section: dict) -> list:
    """The summary's lines about the erase check."""
    checked = section["checked"]
    left = section.get("left") or {}
    what = f"{checked} namespace{'' if checked == 1 else 's'}"
    if not left:
        return [f"erase checked: the {what} read hold no entity of any kind"]
    return [f"erase NOT complete: {len(left)} of the {what} read still hold entities:"] + \
        [f"  {_left_text(ns, e)}" for ns, e in left.items()]
