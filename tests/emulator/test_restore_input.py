"""A malformed undo log or backup given to ``restore_entities`` (issue 22, point 7): one
``error:`` line naming the file and the line, never a traceback; no line skipped.

A real backup (``backup_entities``) is the good input; each case breaks a copy of it. The
launch checks the first lines of local files (exit 2); a bad line further on is found as the
file is read (the run fails, exit 1, naming it): a damaged undo log is not an entity the
restore could not write (what dead letters hold), so the run stops and says where, and a
restore run again after the repair puts back only what is still missing (it is idempotent).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.cloud import datastore

from pipeline.sinks.files.undo import LAUNCH_LINES
from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS, run_mapper

ROOT = Path(__file__).resolve().parents[2]
ENTITIES = LAUNCH_LINES + 50


@pytest.fixture
def backup_lines(emulator, tmp_path) -> list:
    """The lines of a real backup file of ENTITIES entities (bytes, each with its newline)."""
    c = datastore.Client(project=TEST_PROJECT)
    entities = []
    for i in range(1, ENTITIES + 1):
        e = datastore.Entity(c.key("Item", i))
        e.update(category=f"c{i % 7}", n=i)
        entities.append(e)
    c.put_multi(entities)
    out = tmp_path / "backup"
    r = run_mapper("backup_entities", ["--params", "kind=Item"], output=str(out))
    assert r.code == 0, r.stderr
    [path] = list((out / "backup_entities" / "namespaces").rglob("*.jsonl"))
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == ENTITIES
    return lines


def restore(path, env_extra, *extra) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "pipeline", "--job", "restore_entities",
                           "--project", TEST_PROJECT, *IN_PROCESS, "--params", f"from={path}",
                           *extra],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def assert_one_error(r, code: int, *fragments: str) -> str:
    detail = f"exit {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
    assert r.returncode == code, detail
    assert "Traceback" not in r.stderr + r.stdout, detail
    errors = [ln for ln in r.stderr.split("\n") if ln.startswith("error:")]
    assert len(errors) == 1, detail
    for f in fragments:
        assert f in errors[0], f"{f!r} not in the error line\n{detail}"
    return errors[0]


def bad_file(tmp_path, data: bytes, name: str = "Item.jsonl") -> Path:
    d = tmp_path / "bad"
    d.mkdir(exist_ok=True)
    p = d / name
    p.write_bytes(data)
    return p


def test_the_good_backup_restores(backup_lines, emulator, tmp_path):
    """The control: the unbroken file passes (a dry run: nothing to put back)."""
    p = bad_file(tmp_path, b"".join(backup_lines))
    r = restore(p, {**emulator.env(), "TMPDIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("case, break_it, fragments", [
    ("truncated-json-line", lambda lines: lines[:4] + [lines[4][:57]] + lines[5:],
     [", line 5: not JSON"]),
    ("truncated-last-line", lambda lines: lines[:9] + [lines[9][:-30]],
     [", line 10: not JSON"]),
    ("json-but-not-a-record", lambda lines: lines[:2] + [b'{"a": 1}\n'] + lines[3:],
     [", line 3: not an undo record: no key, before, after_sha256"]),
    ("json-array", lambda lines: [b"[1, 2, 3]\n"] + lines,
     [", line 1: not an undo record: a JSON list, not an object"]),
    ("key-not-a-key", lambda lines: [json.dumps({**json.loads(lines[0]), "key": {"path": 7}})
                                     .encode() + b"\n"] + lines[1:],
     [", line 1: not an undo record: its key is not a Datastore key"]),
    ("before-not-an-entity", lambda lines: lines[:1] + [json.dumps(
        {**json.loads(lines[1]), "before": {"properties": {"x": {"nope": 1}}}}).encode() + b"\n"]
        + lines[2:], [", line 2: not an undo record: its before is not an entity"]),
    ("binary-garbage", lambda lines: [bytes(range(255, -1, -1)) * 8],
     [", line 1: not UTF-8 text"]),
    ("binary-garbage-that-decodes", lambda lines: [b"\x00\x01\x02PK\x03\x04 zip?\n"],
     [", line 1: not JSON"]),
    ("empty-file", lambda lines: [], ["is empty: there is nothing to restore"]),
])
def test_a_malformed_file_is_refused_at_launch(backup_lines, emulator, tmp_path, case,
                                               break_it, fragments):
    p = bad_file(tmp_path, b"".join(break_it(list(backup_lines))))
    r = restore(p, {**emulator.env(), "TMPDIR": str(tmp_path)})
    line = assert_one_error(r, 2, *fragments)
    assert str(p) in line and "restore_entities reads JSON lines of undo records" in line


def test_a_malformed_directory_names_the_file(backup_lines, emulator, tmp_path):
    """A directory (as a backup's namespaces/ is): the bad file among good ones is named."""
    bad_file(tmp_path, b"".join(backup_lines), "a.jsonl")
    p = bad_file(tmp_path, b"".join(backup_lines[:3]) + b"not json\n", "b.jsonl")
    r = restore(p.parent, {**emulator.env(), "TMPDIR": str(tmp_path)})
    assert_one_error(r, 2, f"{p}, line 4: not JSON")


def test_a_bad_line_past_the_launch_check_fails_the_run_naming_it(backup_lines, emulator,
                                                                   tmp_path):
    """Line LAUNCH_LINES + 10 is not checked at launch: reading it fails the run (exit 1),
    naming the file and the line; nothing is skipped."""
    n = LAUNCH_LINES + 10
    lines = list(backup_lines)
    lines[n - 1] = b'{"key": "nope"\n'
    p = bad_file(tmp_path, b"".join(lines))
    r = restore(p, {**emulator.env(), "TMPDIR": str(tmp_path)})
    assert_one_error(r, 1, f"{p}, line {n}: not JSON")
    # --launch_checks=false: the same, from the first bad line
    p2 = bad_file(tmp_path, b"".join(backup_lines[:3]) + b"[]\n", "c.jsonl")
    r = restore(p2, {**emulator.env(), "TMPDIR": str(tmp_path)}, "--launch_checks=false")
    assert_one_error(r, 1, f"{p2}, line 4: not an undo record: a JSON list")
