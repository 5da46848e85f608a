"""The undo log: every entity a run changes or deletes, as it was, written before the commit.

Each batch of mutations writes one file, durably, before its commit (``durable.write_whole``:
on disk, or uploaded, when the call returns; not through a sink that publishes at the end), so
a commit that happened always has its undo records, whatever fails afterwards. A transaction
that lost to contention (it did not commit) deletes its file; a commit whose outcome is unknown
keeps it (restoring then compares, see ``restore``).

One JSON object per line: ``job``, ``run``, ``mode``, ``namespace``, ``kind``, ``key`` (the
key's protobuf JSON), ``before`` (the entity's protobuf JSON, ``pipeline.datastore.entity_json``;
null: it did not exist), ``after_sha256`` (of what the run wrote; null: it deleted it) and
``time``. ``restore_entities --params from=DIR`` puts ``before`` back where the entity is still
``after``.

Reading one (``read_records``) checks every line: a line that is not UTF-8, not JSON, or not
such a record (a key that is not a complete Datastore key, a ``before`` that is not an
entity, ...) stops the read with a ``BadUndoLog`` naming the file and the line; no line is
skipped. The launch checks the first ``LAUNCH_LINES`` lines of each local file the same way
(``check_files``).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import uuid
from typing import Iterator, Optional

from apache_beam.io.filesystems import FileSystems

from pipeline.core.namespaces import namespace_label
from pipeline.core.units import path_part
from pipeline.errors import MapperError
from pipeline.sinks.files.durable import write_whole
from pipeline.sinks.files.layout import files_under

SUFFIX = ".jsonl"


def digest(fingerprint: Optional[bytes]) -> Optional[str]:
    return hashlib.sha256(fingerprint).hexdigest() if fingerprint is not None else None


def record(job: str, run: str, mode: str, namespace: str, kind: str, key: dict,
           before: Optional[dict], after_fingerprint: Optional[bytes]) -> dict:
    return {"job": job, "run": run, "mode": mode, "namespace": namespace, "kind": kind,
            "key": key, "before": before, "after_sha256": digest(after_fingerprint),
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")}


def write_batch(undo_dir: str, namespace: str, records: list) -> Optional[str]:
    """One batch's records, as one new file under the namespace's directory; its path."""
    if not records:
        return None
    name = (f"{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S%f}-{os.getpid()}-"
            f"{uuid.uuid4().hex[:10]}{SUFFIX}")
    path = FileSystems.join(undo_dir, path_part(namespace_label(namespace)), name)
    write_whole(path, b"".join(json.dumps(r, ensure_ascii=False, sort_keys=True)
                               .encode("utf-8") + b"\n" for r in records))
    return path


def discard(path: Optional[str], undo_dir: Optional[str]) -> None:
    """A batch that surely did not commit (it lost to contention, or was refused): its
    records go. ``path`` is what ``write_batch(undo_dir, ...)`` returned; even so, only an undo
    file goes (a regular file named ``*SUFFIX`` directly in a namespace's directory under
    ``undo_dir``, not through a symlink, never a directory): whatever else stands there, or
    anywhere else, is left as it is."""
    if not path or not undo_dir or not path.endswith(SUFFIX) or not _within(path, undo_dir):
        return
    try:
        if "://" in path:  # an object store: one object (the name is not a prefix)
            FileSystems.delete([path])
        elif not os.path.islink(path) and os.path.isfile(path):
            os.remove(path)
    except Exception:  # left behind, restoring skips what no commit wrote (it compares)
        pass


def _within(path: str, undo_dir: str) -> bool:
    """``path`` is ``undo_dir/<namespace part>/<name>``, as ``write_batch`` makes it."""
    if "://" in path:
        rest = path[len(undo_dir.rstrip("/")) + 1:] if path.startswith(
            undo_dir.rstrip("/") + "/") else ""
        return rest.count("/") == 1 and ".." not in rest.split("/")
    parent = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    return parent == os.path.abspath(undo_dir) and os.path.basename(path) not in ("", "..")


def undo_files(location: str) -> list[str]:
    """Every undo file under ``location`` (a run's ``undo/`` directory, or one file)."""
    if location.endswith(SUFFIX) and FileSystems.exists(location):
        return [location]
    return sorted(p for p in files_under(location)
                  if p.endswith(SUFFIX) and not os.path.basename(p).startswith("."))


#: What ``restore_entities`` reads, for the messages about a file that is not that.
ACCEPTED = ("restore_entities reads JSON lines of undo records, as a writing run's undo log "
            "(OUTPUT/JOB/runs/RUN/undo) or backup_entities (OUTPUT/backup_entities/namespaces) "
            "writes them")
#: Lines of each local file checked at launch.
LAUNCH_LINES = 100
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BadUndoLog(MapperError):
    """A line of an undo (or backup) file that restore_entities cannot read."""


def _short(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def record_problem(r) -> Optional[str]:
    """What makes ``r`` (a line's JSON) not an undo record, or None."""
    from pipeline.datastore import entity_json as ej  # the Google client: only when reading

    if not isinstance(r, dict):
        return f"a JSON {type(r).__name__}, not an object"
    missing = [f for f in ("key", "before", "after_sha256") if f not in r]
    if missing:
        return f"no {', '.join(missing)}"
    if not isinstance(r["key"], dict):
        return "its key is not an object"
    try:
        key = ej.key_from_json(r["key"])
    except Exception as e:
        return f"its key is not a Datastore key ({_short(e)})"
    if key.is_partial:
        return "its key is incomplete (no id or name)"
    before = r["before"]
    if before is not None:
        if not isinstance(before, dict):
            return "its before is neither null nor an entity"
        try:
            ej.entity_from_json(before)
        except Exception as e:
            return f"its before is not an entity ({_short(e)})"
    sha = r["after_sha256"]
    if sha is not None and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
        return "its after_sha256 is neither null nor a SHA-256 digest"
    if before is None and sha is None:
        return "both before and after_sha256 are null (it records nothing)"
    if r.get("namespace") is not None and not isinstance(r["namespace"], str):
        return "its namespace is not a string"
    return None


def parse_line(path: str, n: int, data: bytes) -> Optional[dict]:
    """Line ``n`` of ``path`` as an undo record; None for a blank line; BadUndoLog otherwise."""
    try:
        line = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadUndoLog(f"{path}, line {n}: not UTF-8 text (byte {e.start + 1}); "
                         f"{ACCEPTED}") from None
    if not line.strip():
        return None
    try:
        r = json.loads(line)
    except ValueError as e:
        raise BadUndoLog(f"{path}, line {n}: not JSON ({_short(e)}); {ACCEPTED}") from None
    problem = record_problem(r)
    if problem:
        raise BadUndoLog(f"{path}, line {n}: not an undo record: {problem}; {ACCEPTED}")
    return r


def read_records(path: str, limit: Optional[int] = None) -> Iterator[dict]:
    """The records of an undo (or backup) file, one at a time (files may be large), every line
    checked (``parse_line``); ``limit``: only that many lines."""
    with FileSystems.open(path) as raw:
        for n, data in enumerate(raw, 1):
            if limit is not None and n > limit:
                return
            r = parse_line(path, n, data)
            if r is not None:
                yield r


def check_files(files: list, lines: int = LAUNCH_LINES) -> None:
    """At launch, where it is cheap: the first ``lines`` lines of each local file are undo
    records (BadUndoLog names the file and the line), and the files hold one record at least
    (an empty undo log restores nothing: it is the wrong one)."""
    local = [f for f in files if "://" not in f]
    if not local or len(local) < len(files):
        return  # Cloud Storage: checked as each file is read
    if all(os.path.getsize(f) == 0 for f in local):
        raise BadUndoLog(f"{local[0] if len(local) == 1 else 'every file of the undo log'} is "
                         f"empty: there is nothing to restore; {ACCEPTED}")
    for f in local:
        for _ in read_records(f, limit=lines):
            pass
