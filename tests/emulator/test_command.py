"""The ``datastore-mapper`` console script as a user runs it, installed from the sdist into a
clean venv (``tests.support.installed``): ``datastore-mapper emulator`` starts a real emulator
that keeps its data on disk and prints what to export; ``datastore-mapper seed`` fills it;
``datastore-mapper --job ...`` runs on it; Ctrl-C (SIGINT) or SIGTERM stops the emulator with its
whole process tree, and the next start finds the data again."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from google.cloud import datastore

from devtools.emulator import EmulatorUnavailable, find_emulator_script
from tests.support.processes import as_in_a_terminal, stop_tree

pytestmark = pytest.mark.emulator
EXPORT = re.compile(r"^export DATASTORE_EMULATOR_HOST=(\S+) DATASTORE_PROJECT_ID=(\S+)$")
PROJECT = "cmd-project"
ROOT = Path(__file__).resolve().parents[2]


def _shown_start(host: str, project: str, data: Path) -> list:
    """What docs/getting-started.md shows ``datastore-mapper emulator --project demo`` print,
    for this host, project and data directory."""
    text = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    block = re.search(r"```text\n\$ datastore-mapper emulator --project demo\n(.*?)```", text,
                      re.S).group(1)
    return [line.replace("127.0.0.1:8081", host)
            .replace("/home/me/.local/share/datastore-mapper/emulator/demo", str(data))
            .replace("project demo", f"project {project}")
            .replace("DATASTORE_PROJECT_ID=demo", f"DATASTORE_PROJECT_ID={project}")
            for line in block.splitlines()]


@pytest.fixture(scope="module")
def sdk():
    try:
        return find_emulator_script()
    except EmulatorUnavailable as e:
        pytest.skip(f"Cloud Datastore emulator unavailable: {e}")






class Started:
    """``datastore-mapper emulator ...`` running; its export line read."""

    def __init__(self, installed, *args):
        self.proc = subprocess.Popen(
            as_in_a_terminal(["datastore-mapper", "emulator", "--port", "0", *args]),
            env=installed.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            m = EXPORT.match(self.lines[-1])
            if m:
                self.host, self.project = m.groups()
                return
        self.proc.kill()
        raise AssertionError(f"no export line: {self.lines} {self.proc.stderr.read()[-3000:]}")

    def env(self, installed) -> dict:
        return installed.env(DATASTORE_EMULATOR_HOST=self.host, DATASTORE_PROJECT_ID=self.project)

    def stop(self, sig) -> tuple:
        return stop_tree(self.proc, sig)


def _items(host: str, project: str) -> int:
    os.environ["DATASTORE_EMULATOR_HOST"] = host
    n = 0
    for ns in ("", "acme", "globex", "initech", "umbrella"):
        q = datastore.Client(project=project, namespace=ns or None).query(kind="Item")
        q.keys_only()
        n += sum(1 for _ in q.fetch())
    return n


def test_emulator_seed_run_and_stop_with_the_whole_tree(sdk, installed_venv, tmp_path,
                                                          monkeypatch):
    monkeypatch.setenv("DATASTORE_EMULATOR_HOST", "unset")
    data = tmp_path / "data"
    emu = Started(installed_venv, "--data_dir", str(data), "--project", PROJECT)
    try:
        assert emu.project == PROJECT and emu.host.startswith("127.0.0.1:")
        assert any(f"data in {data}" in line for line in emu.lines), emu.lines
        assert any("consistency 1.0" in line for line in emu.lines), emu.lines
        emu.lines.append(emu.proc.stdout.readline().rstrip("\n"))  # "Ctrl-C stops it."
        shown = _shown_start(emu.host, PROJECT, data)
        assert emu.lines[-len(shown):] == shown, (emu.lines, shown)  # as the docs show it
        env = emu.env(installed_venv)
        seeded = subprocess.run(["datastore-mapper", "seed", "--small"], env=env,
                                capture_output=True, text=True, timeout=120)
        assert seeded.returncode == 0, seeded.stderr[-3000:]
        total = int(re.search(r"seeded (\d+) entities into project 'cmd-project'",
                              seeded.stdout).group(1))
        out = tmp_path / "out"
        ran = subprocess.run(["datastore-mapper", "--job", "count_keys",
                              "--output", str(out)], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, ran.stderr[-3000:]
        summary = json.loads((out / "count_keys" / "summary.json").read_text())
        assert summary["totals"]["entities"] == total and len(summary["namespaces"]) == 5
    finally:
        code, _, err, left = emu.stop(signal.SIGINT)  # Ctrl-C
    assert code == 0 and left == [], (code, left, err[-2000:])
    assert (data / "WEB-INF").is_dir()
    # Started again on the same directory: the data is still there; SIGTERM stops it too.
    again = Started(installed_venv, "--data_dir", str(data), "--project", PROJECT)
    try:
        assert _items(again.host, PROJECT) == total
    finally:
        code, _, err, left = again.stop(signal.SIGTERM)
    assert code == 0 and left == [], (code, left, err[-2000:])


def test_in_memory_keeps_nothing_and_a_taken_port_is_one_line(sdk, installed_venv, tmp_path):
    home = tmp_path / "xdg"
    env = installed_venv.env(XDG_DATA_HOME=str(home))
    proc = subprocess.Popen(
        as_in_a_terminal(["datastore-mapper", "emulator", "--port", "0", "--in_memory"]),
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    try:
        while True:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()[-3000:]
            lines.append(line)
            m = EXPORT.match(line.rstrip("\n"))
            if m:
                break
        assert any("in memory" in line for line in lines), lines
        port = int(m.group(1).rsplit(":", 1)[1])
        taken = subprocess.run(["datastore-mapper", "emulator", "--port", str(port)], env=env,
                               capture_output=True, text=True, timeout=60)
        assert taken.returncode == 2, taken
        errors = [line for line in taken.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"port {port}" in errors[0], taken.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert not home.exists()  # nothing kept, not even the default data directory
