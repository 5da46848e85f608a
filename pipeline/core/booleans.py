"""One rule for a true/false value given as text, for the CLI's flags and the jobs' parameters
alike: ``--job_file=yes`` and ``by_parent=yes`` mean the same thing."""
from __future__ import annotations

from typing import Union

TRUE = ("true", "yes", "1")
FALSE = ("false", "no", "0")
#: What a message says is accepted.
ACCEPTED = "true or false (also yes/no, 1/0; any case)"


def parse_bool(text: Union[str, bool]) -> bool:
    """``text`` as a boolean (surrounding spaces and case ignored); ``ValueError`` naming what is
    accepted for anything else."""
    if isinstance(text, bool):
        return text
    t = str(text).strip().lower()
    if t in TRUE:
        return True
    if t in FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean: use {ACCEPTED}")
