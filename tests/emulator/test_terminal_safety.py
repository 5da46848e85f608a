"""Data never reaches the operator's terminal raw (issue 22, point 6).

Kind names and string values holding escape sequences (a title change, a screen clear, a C1
CSI, a bidi override, a carriage return, a line feed followed by a fake ``error:``) go through
the real CLI (a subprocess, its output captured as bytes): in the summary table, counter
names, log lines, a hook's print, a job's failure and a refused launch's ``error:`` line. The
terminal gets them escaped (``\\x1b[2J``), on the line they belong to; the files keep them raw.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.cloud import datastore

from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS

ROOT = Path(__file__).resolve().parents[2]
JOB_MODULE = ["--job_module", "tests.support.jobs_terminal"]

#: What the terminal must never get raw: ESC, BEL, CR, a C1 CSI, bidi overrides and isolates.
RAW = ["\x1b", "\x07", "\r", "\x9b", "\u202e", "\u2066", "\x00"]
EVIL_VALUES = ["\x1b[2J", "\x1b]0;pwned\x07", "boom\nerror: fake from the job", "\u202eevil",
               "\x9b31mred", "a\rOVERWRITTEN", "nul\x00", "\u2066isolate"]
EVIL_KIND = "\x1b]0;kind-pwned\x07Kind\nerror: fake kind"


@pytest.fixture
def evil(emulator):
    c = datastore.Client(project=TEST_PROJECT)
    entities = []
    for i, value in enumerate(EVIL_VALUES + ["plain"]):
        e = datastore.Entity(c.key("Item", i + 1))
        e.update(category=value)
        entities.append(e)
    for i in range(3):
        e = datastore.Entity(c.key(EVIL_KIND, f"k{i}"))
        e.update(category="\x1b[31mred kind value")
        entities.append(e)
    c.put_multi(entities)
    return c


def cli(args, env_extra, runner=IN_PROCESS) -> tuple:
    """The CLI in a subprocess: (exit code, stdout, stderr), decoded as received (bytes: a
    text-mode pipe would turn a CR into a line feed)."""
    env = {**os.environ, **env_extra, "PYTHONIOENCODING": "utf-8"}
    p = subprocess.run([sys.executable, "-m", "pipeline", "--project", TEST_PROJECT, *runner,
                        "--progress_seconds", "1", *args],
                       cwd=ROOT, env=env, capture_output=True, timeout=300)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8")


def assert_terminal_safe(code, out, err, errors: int) -> None:
    detail = f"exit {code}\n--- stdout\n{out!r}\n--- stderr\n{err!r}"
    for c in RAW:
        assert c not in out and c not in err, f"raw {c!r} reached the terminal\n{detail}"
    lines = (out + err).split("\n")
    assert len([ln for ln in lines if ln.startswith("error:")]) == errors, detail
    assert not any("error: fake" in ln[:12] or ln.startswith("error: fake") for ln in lines), detail
    assert "Traceback" not in out + err, detail


def test_summary_counters_and_kind_names_are_escaped(evil, emulator, tmp_path):
    code, out, err = cli(["--job", "count_by_property", "--params", "kind=*",
                          "--output", str(tmp_path / "out")], emulator.env())
    assert code == 0, err
    assert_terminal_safe(code, out, err, errors=0)
    # shown, escaped, each on its own row of the table
    assert "value:\\x1b[2J=1" in out and "value:\\x1b]0;pwned\\x07=1" in out
    assert "value:boom\\nerror: fake from the job=1" in out
    assert "value:\\u202eevil=1" in out and "value:\\x9b31mred=1" in out
    assert "value:a\\rOVERWRITTEN=1" in out
    assert "\\x1b]0;kind-pwned\\x07Kind\\nerror: fake kind" in out
    # the files keep the data as it is
    with open(tmp_path / "out" / "count_by_property" / "summary.json", encoding="utf-8") as f:
        summary = json.load(f)
    counters = summary["totals"]["counters"]
    assert all(counters.get(f"value:{v}") == 1 for v in EVIL_VALUES), counters
    assert any(EVIL_KIND in n.get("kinds", {}) for n in summary["namespaces"].values())


def test_log_lines_and_a_hooks_print_are_escaped(evil, emulator, tmp_path):
    code, out, err = cli(["--job", "echo_values", *JOB_MODULE, "--params", "kind=*"],
                         {**emulator.env(), "TMPDIR": str(tmp_path)})
    assert code == 0, err
    assert_terminal_safe(code, out, err, errors=0)
    assert "value of Item: boom\\nerror: fake from the job" in err  # a log line
    assert "hook: counters " in out and "value:\\x1b[2J" in out  # the hook's print




def test_a_jobs_failure_with_the_data_in_its_message_is_one_line(evil, emulator, tmp_path):
    code, out, err = cli(["--job", "echo_values", *JOB_MODULE, "--params", "fail_on=boom"],
                         {**emulator.env(), "TMPDIR": str(tmp_path)})
    assert code == 1, err
    assert_terminal_safe(code, out, err, errors=1)
    [line] = [ln for ln in err.split("\n") if ln.startswith("error:")]
    assert "ValueError: cannot handle boom\\nerror: fake from the job" in line, err


def test_a_refused_launch_lists_the_kinds_found_escaped(evil, emulator, tmp_path):
    code, out, err = cli(["--job", "count_by_property", "--params", "kind=Nope"],
                         {**emulator.env(), "TMPDIR": str(tmp_path)})
    assert code == 2, err
    assert_terminal_safe(code, out, err, errors=1)
    [line] = [ln for ln in err.split("\n") if ln.startswith("error:")]
    assert "kinds found: " in line and "\\x1b]0;kind-pwned\\x07Kind\\nerror: fake kind" in line
