"""The ``datastore-mapper`` console script as a new user meets it on a fresh clone: what it
imports, what it prints, what it leaves behind. Every run is the real console script of this
venv in a subprocess, against the real emulator."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.seed import NamespaceSpec, seed_dataset
from tests.support import TEST_PROJECT

#: The console script installed beside this interpreter (``pip install -e .``).
SCRIPT = Path(sys.executable).parent / "datastore-mapper"

TAGCOUNT = '''
from pipeline import JobSpec, Query, register


@register
class TagCount(JobSpec):
    """Count the items."""

    name = "tagcount"

    def query(self, params):
        return Query(kind="Item")

    def next(self, ctx, item):
        ctx.counters.inc("items")
'''


@pytest.fixture
def seeded(emulator):
    return seed_dataset(TEST_PROJECT, [NamespaceSpec("", 30), NamespaceSpec("acme", 20)])


def console(args, cwd: Path, env_extra: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    if not SCRIPT.exists():
        pytest.skip(f"{SCRIPT} is not installed (pip install -e .)")
    env = {**os.environ, **env_extra, "PYTHONIOENCODING": "utf-8"}
    env.pop("PYTHONPATH", None)  # as a user's shell: the module is found from the directory
    return subprocess.run([str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=timeout)


def error_lines(r: subprocess.CompletedProcess) -> list:
    return [line for line in r.stderr.splitlines() if line.startswith("error:")]


def test_job_module_is_imported_from_the_current_directory(emulator, seeded, tmp_path):
    (tmp_path / "tagcount.py").write_text(TAGCOUNT, encoding="utf-8")
    r = console(["--job_module", "tagcount", "--job", "tagcount", "--project", TEST_PROJECT],
                tmp_path, emulator.env())
    assert r.returncode == 0, r.stderr
    assert "job tagcount: 50 entities in 2 namespaces" in r.stdout, r.stdout
    assert "total counters: items=50" in r.stdout, r.stdout


def test_a_job_module_not_found_says_where_it_looked(emulator, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = console(["--job_module", "tagcount_absent", "--job", "tagcount", "--project",
                 TEST_PROJECT], elsewhere, emulator.env())
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    [line] = error_lines(r)
    assert "cannot import job module 'tagcount_absent'" in line, line
    assert f"(looked in: {elsewhere}, " in line, line  # the current directory first
    assert str(SCRIPT.parent) in line, line
