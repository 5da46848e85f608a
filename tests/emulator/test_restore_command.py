"""The restore command a writing run's summary prints works, run as printed, whatever its
``--output`` path holds (issue 22, point 8): a comma (which ``--params`` would have split), a
space, quotes, a dollar sign, a leading-space directory name."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from google.cloud import datastore

from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS

ROOT = Path(__file__).resolve().parents[2]


def cli(argv, env_extra) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def categories() -> dict:
    c = datastore.Client(project=TEST_PROJECT)
    return {e.key.id: e.get("category") for e in c.query(kind="Item").fetch()}


@pytest.mark.parametrize("dirname", [
    "out,with comma",
    "it's \"quoted\", $HOME and a\\backslash",
    " leading space,",
])
def test_the_printed_restore_command_restores_as_printed(emulator, tmp_path, dirname):
    c = datastore.Client(project=TEST_PROJECT)
    entities = []
    for i in range(1, 31):
        e = datastore.Entity(c.key("Item", i))
        e.update(category=f"c{i % 3}")
        entities.append(e)
    c.put_multi(entities)
    before = categories()
    out = tmp_path / dirname
    env = {**emulator.env(), "TMPDIR": str(tmp_path)}
    r = cli([sys.executable, "-m", "pipeline", "--job", "set_property", "--project", TEST_PROJECT,
             *IN_PROCESS, "--params", "kind=Item,property=category,value=changed",
             "--output", str(out), "--writes=transactional"], env)
    assert r.returncode == 0, r.stderr
    assert set(categories().values()) == {"changed"}
    m = re.search(r"^undo log: .* \(restore with: (.*)\)$", r.stdout, flags=re.M)
    assert m, r.stdout
    printed = m.group(1)
    argv = shlex.split(printed)  # as a shell would read it
    assert argv[:3] == ["python", "-m", "pipeline"]
    r = cli([sys.executable, *argv[1:]], env)
    assert r.returncode == 0, f"{printed}\n{r.stderr}"
    assert categories() == before
