"""Which files under ``OUTPUT/JOB`` this tool wrote: a run deletes or replaces only those.

Proof of ownership is a record this tool keeps, never the mere shape of a name (a user's copy
of an old export has the shape of our files):

- the lease ``.lease.json`` of the run that holds, or held, the output (``lease``): its run id,
  and, once a local run has ended without completing, the files it left (``files``);
- a run's ``summary.json`` (``OUTPUT/JOB/summary.json``, or ``runs/RUN/summary.json`` for a job
  that writes back): its run id and every file it wrote (``files``). A summary written before
  runs recorded their files names none: its fixed files (``summary.json``, ``report.html``,
  ``schema.json``, ``dead_letter.jsonl``, ``all.*``, ``schemas/*``) are taken as its own;
- a unit's manifest ``manifests/PART.json`` whose run id is one of those runs: it and the file
  it names;
- the temporary directories named after one of those runs (``.shards-RUN/``,
  ``.dead_letters-RUN/``).

``runs/`` and ``failed-runs/`` are never cleared nor replaced, so they are nobody's to judge.
Everything else is foreign: the launch refuses, naming it (``prepare.plan_output``).
"""
from __future__ import annotations

import dataclasses
import json
from typing import Callable, Iterable, Optional

from pipeline.sinks.files.layout import (
    FAILED_RUNS_DIR,
    JOB_FILE_STEM,
    MANIFESTS_DIR,
    REPORT_FILE,
    RUNS_DIR,
    SCHEMA_FILE,
    SCHEMAS_DIR,
    SHARDS_PREFIX,
    SUMMARY_FILE,
    DEAD_LETTER_FILE,
    DEAD_LETTERS_PREFIX,
    LEASE_FILE,
    files_under,
    job_dir,
    relative,
)

#: Directories whose content is kept by every mode: never cleared, never refused.
KEPT_DIRS = (RUNS_DIR + "/", FAILED_RUNS_DIR + "/")
_LEGACY_FIXED = {SUMMARY_FILE, REPORT_FILE, SCHEMA_FILE, DEAD_LETTER_FILE}


@dataclasses.dataclass(frozen=True)
class Ownership:
    """What ``OUTPUT/JOB`` holds, judged: names are relative to it, '/'-separated."""

    owned: frozenset  # written by a run this tool recorded
    foreign: tuple  # sorted; named by no record: never deleted, the launch refuses
    kept: frozenset  # under runs/ or failed-runs/: left alone
    runs: frozenset  # the run ids whose records were found


def _record(read: Callable[[str], Optional[bytes]], name: str) -> Optional[dict]:
    data = read(name)
    if data is None:
        return None
    try:
        record = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("run_id"), str) \
        else None


def _names(record: dict) -> set:
    files = record.get("files")
    return {f for f in files if isinstance(f, str)} if isinstance(files, list) else set()


def judge(names: Iterable[str], read: Callable[[str], Optional[bytes]], top: str) -> Ownership:
    """``names``: every file under ``top`` (OUTPUT/JOB), relative to it; ``read(name)``: its
    bytes, or None if it can't be read. Pure but for ``read``: tested without a file system."""
    names = set(names)
    kept = {n for n in names if n.startswith(KEPT_DIRS)}
    owned: set = set()
    runs: set = set()

    def claim(record_name: str, legacy_fixed: bool = False) -> None:
        record = _record(read, record_name) if record_name in names else None
        if record is None:
            return
        owned.add(record_name)
        runs.add(record["run_id"])
        listed = _names(record)
        owned.update(listed & names)
        if legacy_fixed and "files" not in record:  # written before runs recorded their files
            owned.update(n for n in names if n in _LEGACY_FIXED
                         or n.startswith(JOB_FILE_STEM + ".") or n.startswith(SCHEMAS_DIR + "/"))

    prefix = top.rstrip("/") + "/"
    claim(LEASE_FILE)
    claim(SUMMARY_FILE, legacy_fixed=True)
    for n in sorted(kept):
        parts = n.split("/")
        if len(parts) == 3 and parts[0] == RUNS_DIR and parts[2] == SUMMARY_FILE:
            claim(n)
    for n in sorted(names):
        if n.startswith(MANIFESTS_DIR + "/") and n.endswith(".json"):
            m = _record(read, n)
            if m is not None and (m["run_id"] in runs or n in owned):
                owned.add(n)
                output = m.get("output")
                if isinstance(output, str) and output.startswith(prefix):
                    owned.add(output[len(prefix):])
    for n in names:
        head = n.split("/", 1)[0]
        for prefix in (SHARDS_PREFIX, DEAD_LETTERS_PREFIX):
            if head.startswith(prefix) and head[len(prefix):] in runs:
                owned.add(n)
    owned &= names
    owned -= kept
    foreign = tuple(sorted(names - owned - kept))
    return Ownership(frozenset(owned), foreign, frozenset(kept), frozenset(runs))


def written_by_the_run(names: Iterable[str]) -> list[str]:
    """What a run records as its files at its end: every file under OUTPUT/JOB (relative)
    but the kept directories, the lease and temporary directories (named by its run id)."""
    return sorted(n for n in names if not n.startswith(KEPT_DIRS) and n != LEASE_FILE
                  and not n.split("/", 1)[0].startswith((SHARDS_PREFIX, DEAD_LETTERS_PREFIX)))


def files_of_the_run(output: str, job_name: str, extra: Iterable[Optional[str]] = ()) -> list:
    """The run's record of its files (``written_by_the_run`` of what OUTPUT/JOB holds now,
    plus ``extra``: its summary and report, about to be written), relative to OUTPUT/JOB."""
    where = job_dir(output, job_name)
    names = [relative(p, where) for p in files_under(where)]
    prefix = where.rstrip("/") + "/"
    names += [p[len(prefix):] for p in extra if p and p.startswith(prefix)]
    return written_by_the_run(set(names))
