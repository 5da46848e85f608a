"""The streaming demo (``python -m devtools.demo --job stream_entities``, what ``run_demo.sh``
runs) leaves nothing in the temporary directory: not bqemulator's directory (78 MB with its
DuckDB extension) nor its ``bqemu_uploads/``, not the Datastore emulator's; only the output it
names at the end. Also when the run fails, or the demo is stopped by Ctrl-C (SIGINT to its
process group, as a terminal sends it) or SIGTERM (to the demo alone): then no process of its
tree is left either. Each test runs the real demo (both emulators, the demo data) with a TMPDIR
of its own."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.bq_emulator import unavailable_reason
from devtools.emulator import EmulatorUnavailable, find_emulator_script
from tests.support.processes import alive, as_in_a_terminal, descendants

pytestmark = pytest.mark.emulator
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def both_emulators() -> None:
    try:
        find_emulator_script()
    except EmulatorUnavailable as exc:
        pytest.skip(f"Cloud Datastore emulator unavailable: {exc}")
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"BigQuery emulator (bqemulator) unavailable: {reason}")


def _demo(tmp_path: Path, *args: str) -> tuple:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DEMO_OUTPUT", "DATASTORE_EMULATOR_HOST", "BIGQUERY_EMULATOR_HOST")}
    # a session of its own (a Ctrl-C can go to its whole group, as a terminal sends it)
    proc = subprocess.Popen(as_in_a_terminal([sys.executable, "-m", "devtools.demo", *args]),
                            cwd=ROOT, env={**env, "TMPDIR": str(tmpdir)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    return proc, tmpdir


def _finish(proc: subprocess.Popen, timeout: float = 300) -> tuple:
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in [proc.pid, *descendants(proc.pid)]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        raise


def test_the_streaming_demo_keeps_only_the_output_it_names(both_emulators, tmp_path):
    proc, tmpdir = _demo(tmp_path, "--job", "stream_entities")
    out, err = _finish(proc)
    assert proc.returncode == 0, (out[-3000:], err[-3000:])
    assert "  items_acme: 3000 rows" in out.splitlines(), out[-3000:]
    output = next(line[len("output: "):] for line in out.splitlines()
                  if line.startswith("output: "))
    assert [str(p) for p in tmpdir.iterdir()] == [output]  # the output, kept and named; no more


def test_a_failed_run_leaves_nothing(both_emulators, tmp_path):
    # The table is missing and may not be created: the run fails at launch, after bqemulator
    # started.
    proc, tmpdir = _demo(tmp_path, "--job", "stream_entities", "--bigquery_create=false")
    out, err = _finish(proc)
    assert proc.returncode not in (0, 130) and "BigQuery emulator (bqemulator) ready" in out, \
        (out[-3000:], err[-3000:])
    assert list(tmpdir.iterdir()) == []


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupted_demo_leaves_no_process_and_nothing_on_disk(both_emulators, tmp_path, how):
    proc, tmpdir = _demo(tmp_path, "--job", "stream_entities")
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("running:"):
            break
    else:
        pytest.fail(f"the demo did not get to its run: {lines} {proc.stderr.read()[-3000:]}")
    for line in proc.stderr:  # the pipeline's log: interrupted while it streams
        lines.append(line)
        if "created BigQuery table" in line:
            break
    else:
        pytest.fail(f"the run did not stream: {lines[-20:]}")
    tree = descendants(proc.pid)
    assert len(tree) >= 3, tree  # the Datastore emulator, bqemulator, the pipeline
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)  # a terminal's Ctrl-C: the whole foreground group
    else:
        proc.send_signal(signal.SIGTERM)  # the demo alone
    out, err = _finish(proc, timeout=180)
    assert proc.returncode == 130, (out[-3000:], err[-3000:])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in tree):
        time.sleep(0.1)
    assert [p for p in tree if alive(p)] == []
    assert list(tmpdir.iterdir()) == []
