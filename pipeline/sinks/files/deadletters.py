"""The run's dead-letter file: written as parts by the workers while the run goes on, composed
at the end.

A worker writes the letters of a slice itself, as soon as the slice is read (and before it
fails the run when ``--max_errors`` is exceeded): Beam discards a failed bundle's outputs, so
letters sent down the graph would be lost with the bundle that failed. Each slice's part file
is named after the slice (``core.deadletters.slice_part_name``), so a retried slice replaces
its letters; the composition drops any line written twice anyway (``identity``). The final
file appears under its name only complete (a temp file renamed on disk; one upload on Cloud
Storage), and only when there is at least one letter.
"""
from __future__ import annotations

import json
import logging
from typing import Iterable, Optional

from apache_beam.io.filesystems import FileSystems

from pipeline.core.deadletters import identity
from pipeline.sinks.files.durable import write_whole
from pipeline.sinks.files.layout import files_under, remove_tree

log = logging.getLogger(__name__)


def _lines(letters: Iterable[dict]) -> bytes:
    return b"".join(json.dumps(d, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"
                    for d in letters)


def write_part(parts_dir: str, name: str, letters: list[dict]) -> str:
    """One slice's letters, as one part file (replacing an earlier attempt's)."""
    path = FileSystems.join(parts_dir, name)
    write_whole(path, _lines(letters))
    return path


def read_letters(paths: Iterable[str]) -> list[dict]:
    out = []
    for path in sorted(paths):
        with FileSystems.open(path) as f:
            for line in f.read().decode("utf-8").splitlines():
                if line.strip():
                    out.append(json.loads(line))
    return out


def compose(parts_dir: str, final: str, keep: Optional[list[dict]] = None) -> int:
    """The parts (and ``keep``: letters carried over, e.g. by a resumed run) into ``final``,
    each letter once; the parts are removed. Returns how many letters ``final`` holds (0: no
    file is written)."""
    seen: dict = {}
    for letter in [*(keep or []), *read_letters(files_under(parts_dir))]:
        seen.setdefault(identity(letter), letter)
    letters = sorted(seen.values(), key=lambda d: (str(d.get("namespace")), str(d.get("kind")),
                                                   json.dumps(d.get("key")), str(d.get("index")),
                                                   str(d.get("insert_id"))))
    if letters:
        write_whole(final, _lines(letters))
    try:
        remove_tree(parts_dir)
    except Exception as e:  # only temporary files: say so, do not fail the run for it
        log.warning("could not remove the dead-letter parts in %s: %s", parts_dir, e)
    return len(letters)
