"""What a local run leaves behind, in the temporary directory and under its output.

- A run that succeeded, or was interrupted, leaves its ``TMPDIR`` empty (Beam itself leaves
  nothing there either: measured with the local runner, two worker processes and in-memory).
- An interrupted run (SIGINT to the launcher, or Ctrl-C, which signals the whole process group)
  exits with 130 and one ``interrupted:`` line, stops every worker process, and removes the
  output's temporary files (``.shards-*``, ``.lease.json``).
- A failed run leaves its ``TMPDIR`` empty too: its private directory ``datastore-mapper-run-*``
  is removed, its workers' log kept (mode 0600) in the run's directory of the user's cache,
  named on stderr.
- The run directory's files are made exclusively, never through a symlink planted there.

Every run is the real CLI in a subprocess, with ``TMPDIR`` a fresh empty directory.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devtools.seed import NamespaceSpec, seed_dataset
from pipeline.launch import logs
from pipeline.launch.launcher import RUNDIR_PREFIX, RunDir
from tests.support import TEST_PROJECT

ROOT = Path(__file__).resolve().parents[2]
JOB_MODULE = ["--job_module", "tests.support.jobs_failing"]


@pytest.fixture
def seeded(emulator):
    return seed_dataset(TEST_PROJECT, [NamespaceSpec("", 30), NamespaceSpec("acme", 20)])


def _env(emulator, tmpdir: Path) -> dict:
    return {**os.environ, **emulator.env(), "TMPDIR": str(tmpdir), "PYTHONIOENCODING": "utf-8",
            "PYTHONDONTWRITEBYTECODE": "1"}


def _cli(args, env, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=timeout)


def _listing(top: Path) -> list[str]:
    return sorted(str(p.relative_to(top)) for p in top.rglob("*"))


# --- success ----------------------------------------------------------------------------------


@pytest.mark.parametrize("output", [False, True], ids=["no-output", "output"])
@pytest.mark.parametrize("runner", [[]], ids=["default-in-process"])
def test_a_successful_run_leaves_tmpdir_empty(emulator, seeded, tmp_path, output, runner):
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    out = tmp_path / "out"
    args = ["--job", "export_keys", "--project", TEST_PROJECT, *runner]
    cache = tmp_path / "cache"
    env = {**_env(emulator, tmpdir), "XDG_CACHE_HOME": str(cache)}
    r = _cli(args + (["--output", str(out)] if output else ["--discard_records"]), env)
    assert r.returncode == 0, r.stderr
    assert _listing(tmpdir) == [], r.stderr
    if output:
        assert _listing(out / "export_keys") == [
            "manifests", "manifests/__default__.json", "manifests/acme.json", "namespaces",
            "namespaces/__default__.jsonl", "namespaces/acme.jsonl", "report.html",
            "summary.json"]
        assert not cache.exists()
    else:  # the summary and the report are kept under the cache directory, and named
        runs = list((cache / "datastore-mapper" / "runs").iterdir())
        assert len(runs) == 1 and stat.S_IMODE(runs[0].stat().st_mode) == 0o700, runs
        assert sorted(p.name for p in runs[0].iterdir()) == ["report.html", "summary.json"]
        assert r.stdout.splitlines()[-1] == (f"summary {runs[0] / 'summary.json'}; report "
                                             f"{runs[0] / 'report.html'}"), r.stdout


# --- interrupted --------------------------------------------------------------------------------


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(encoding="utf-8", errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared (exit {proc.poll()}):\n"
                         f"{path.read_text(encoding='utf-8', errors='replace')}")


@pytest.mark.parametrize("runner", [[]], ids=["default-in-process"])
@pytest.mark.parametrize("how", ["sigint-to-the-launcher", "ctrl-c-to-the-process-group"])
def test_an_interrupted_run_stops_everything_and_leaves_nothing(emulator, seeded, tmp_path, how,
                                                                runner):
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    out = tmp_path / "out"
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    args = [sys.executable, "-m", "pipeline", "--job", "slow_keys", *JOB_MODULE, "--project",
            TEST_PROJECT, "--params", "sleep=0.3", "--slice_entities", "2",
            "--progress_seconds", "0.5", "--output", str(out), *runner]
    with open(stdout, "w") as so, open(stderr, "w") as se:
        proc = subprocess.Popen(args, cwd=ROOT, env=_env(emulator, tmpdir), stdout=so,
                                stderr=se, start_new_session=True)
    try:
        _wait_for(stderr, "progress:", proc, timeout=60)  # reading, slices done
        deadline = time.monotonic() + 30  # ... and records written as temporary shards
        while not [p for p in (out / "slow_keys").glob(".shards-*/**/*") if p.is_file()]:
            assert time.monotonic() < deadline and proc.poll() is None, _listing(out)
            time.sleep(0.1)
        assert (out / "slow_keys" / ".lease.json").exists()
        started = time.monotonic()
        if how == "sigint-to-the-launcher":
            proc.send_signal(signal.SIGINT)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(timeout=60)
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = stderr.read_text(encoding="utf-8")
    detail = f"exit {code} after {took:.1f} s\n--- stderr\n{err}"
    assert code == 130, detail
    assert "Traceback" not in err and "Traceback" not in stdout.read_text(encoding="utf-8"), detail
    lines = [ln for ln in err.splitlines() if ln.startswith("interrupted:")]
    assert len(lines) == 1, detail
    assert not [ln for ln in err.splitlines() if ln.startswith("error:")], detail
    assert "its temporary files were removed" in lines[0], detail
    assert _group_members(proc.pid) == [], detail  # nothing left in the run's process group
    assert _listing(tmpdir) == [], detail
    job_dir = out / "slow_keys"
    assert not list(job_dir.glob(".shards-*")) and not (job_dir / ".lease.json").exists(), \
        (_listing(out), detail)
    assert not list(job_dir.glob(".dead_letters-*")), (_listing(out), detail)


def _group_members(pgid: int) -> list[int]:
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(name))
    return members


# --- failed -------------------------------------------------------------------------------------


@pytest.mark.parametrize("output", [False, True], ids=["no-output", "output"])
def test_a_failed_run_leaves_nothing_in_tmpdir_and_keeps_the_workers_log_in_the_cache(
        emulator, seeded, tmp_path, output):
    tmpdir, cache = tmp_path / "tmpdir", tmp_path / "cache"
    tmpdir.mkdir()
    named = [flat for flat in seeded["acme"] if len(flat) == 2 and isinstance(flat[1], str)]
    bad = named[0][1]
    args = ["--job", "fail_on_entity", *JOB_MODULE, "--project", TEST_PROJECT,
            "--params", f"fail_on={bad}"]
    r = _cli(args + (["--output", str(tmp_path / "out")] if output else []),
             {**_env(emulator, tmpdir), "XDG_CACHE_HOME": str(cache)})
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr
    assert list(tmpdir.iterdir()) == [], list(tmpdir.iterdir())  # no datastore-mapper-run-*
    logs_kept = list((cache / "datastore-mapper" / "runs").glob("*-fail_on_entity-*/workers.log"))
    assert len(logs_kept) == 1, list(cache.rglob("*"))
    log = logs_kept[0]
    assert f"(the workers' raw output is in {log})" in r.stderr, r.stderr
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert stat.S_IMODE(log.parent.stat().st_mode) == 0o700
    # The workers' raw output: the traceback the CLI's one line stands for.
    assert f"cannot handle {bad!r}" in log.read_text(encoding="utf-8", errors="replace")
    if output:
        job_dir = tmp_path / "out" / "fail_on_entity"
        # What the failed run left, and its record of it (issue 22: the next run clears only
        # what a record names): the lease, ended, naming the files.
        left = _listing(job_dir)
        assert left in ([], [".lease.json", "dead_letter.jsonl"]), left
        if left:
            record = json.loads((job_dir / ".lease.json").read_text(encoding="utf-8"))
            assert record["status"] == "failed" and record["ended"], record
            assert record["files"] == ["dead_letter.jsonl"], record


# --- the run directory: exclusive files, no symlink followed -------------------------------------


def test_run_directory_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    d = RunDir()
    try:
        assert Path(d.path).parent == tmp_path and Path(d.path).name.startswith(RUNDIR_PREFIX)
        assert stat.S_IMODE(os.stat(d.path).st_mode) == 0o700
        f = d.file("workers.log")
        assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
        with pytest.raises(FileExistsError):
            d.file("workers.log")  # exclusive: never a file that is already there
    finally:
        d.remove()
    assert not os.path.exists(d.path)


def test_run_directory_does_not_follow_a_planted_symlink(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    target = tmp_path / "victim.txt"
    target.write_text("precious\n", encoding="utf-8")
    dangling = tmp_path / "not-yet-there.txt"
    d = RunDir()
    try:
        os.symlink(target, os.path.join(d.path, "workers.log"))
        os.symlink(dangling, os.path.join(d.path, "summary.json"))
        with pytest.raises(OSError):
            d.file("workers.log")
        with pytest.raises(OSError):
            d.file("summary.json")  # a dangling link is not followed to create its target
        assert target.read_text(encoding="utf-8") == "precious\n"
        assert not dangling.exists()
    finally:
        d.remove()
    assert target.exists()  # removing the directory removes the link, not its target


def test_worker_log_is_opened_without_following_a_symlink(tmp_path, monkeypatch):
    """The log made by RunDir.file, swapped for a symlink before the run opens it: refused."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    target = tmp_path / "victim.txt"
    target.write_text("precious\n", encoding="utf-8")
    d = RunDir()
    try:
        path = d.file("workers.log")
        os.unlink(path)
        os.symlink(target, path)
        with pytest.raises(OSError):
            with logs.worker_stderr_to(path):
                pass
        assert target.read_text(encoding="utf-8") == "precious\n"
    finally:
        d.remove()
