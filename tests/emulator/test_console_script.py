"""The ``datastore-mapper`` console script as a new user meets it on a fresh clone: what it
imports, what it prints, what it leaves behind. Every run is the real console script of this
venv in a subprocess, against the real emulator."""
from __future__ import annotations

import contextlib
import http.server
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from google.cloud import datastore

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


# --- an emulator that is not there ---------------------------------------------------------------


@contextlib.contextmanager
def closing_listener() -> Iterator[str]:
    """A port that accepts connections and closes each at once: a transient failure that the
    launch checks retry until their deadline."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conn, _ = server.accept()
                conn.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        t.join(5)
        server.close()


def test_an_emulator_that_keeps_failing_is_one_line_naming_our_emulator_command(tmp_path):
    with closing_listener() as host:
        started = time.monotonic()
        r = console(["--job", "count_keys", "--project", TEST_PROJECT, "--datastore_deadline",
                     "3"], tmp_path, {"DATASTORE_EMULATOR_HOST": host})
        took = time.monotonic() - started
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr  # no retry WARNINGs
    assert f"the Datastore emulator at {host} is unreachable" in lines[0]
    assert "attempts" in lines[0]  # how often it was tried, in the one line
    port = host.rsplit(":", 1)[1]
    assert f"`datastore-mapper emulator --project {TEST_PROJECT} --port {port}`" in lines[0]
    assert "gcloud" not in lines[0]
    assert took < 60, took


def test_a_web_server_where_the_emulator_should_be_is_one_line_at_once(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    host = f"127.0.0.1:{server.server_address[1]}"
    try:
        started = time.monotonic()
        r = console(["--job", "count_keys", "--project", TEST_PROJECT], tmp_path,
                    {"DATASTORE_EMULATOR_HOST": host})
        took = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()
    assert r.returncode == 2, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert "not retried: no Datastore answers there" in lines[0], lines[0]
    assert "something else answers there (not gRPC)" in lines[0], lines[0]
    # Not the launch's 20 s of retries: the time to start the command and ask once.
    assert took < 15, took


# --- what an ordinary run prints ---------------------------------------------------------------


def test_an_export_read_at_planning_and_in_ranges_warns_of_no_orphaned_files(emulator, seeded,
                                                                             tmp_path):
    """Each namespace is read partly by its first read (planning) and partly in ranges: the two
    parts' shards of one namespace file are written by two steps. Beam's fileio warned "Some files
    may be left orphaned" for each such namespace, seeing the other part's temporary files."""
    r = console(["--job", "export_keys", "--project", TEST_PROJECT, "--query_entities", "5",
                 "--output", str(tmp_path / "out")], tmp_path, emulator.env())
    assert r.returncode == 0, r.stderr
    assert "ranges" in r.stdout and "records output: 50" in r.stdout, r.stdout
    assert "orphaned" not in r.stderr, r.stderr
    assert " WARNING " not in r.stderr, r.stderr


# --- printed follow-up commands, and a restore's lines ------------------------------------------


def test_printed_commands_name_the_console_script_and_a_restore_prints_its_own_lines(
        emulator, tmp_path):
    """The dry run's apply command and the real run's restore command say ``datastore-mapper``
    (the program the user ran) and run as printed; the restore shows no key ranges (it reads
    its undo log, not ranges) and no progress line twice, none of them "listing namespaces"."""
    c = datastore.Client(project=TEST_PROJECT)
    items = []
    for i in range(1, 21):
        e = datastore.Entity(c.key("Item", i))
        e.update(category=f"c{i % 3}")
        items.append(e)
    c.put_multi(items)
    before = {e.key.id: e["category"] for e in c.query(kind="Item").fetch()}
    env = emulator.env()
    args = ["--job", "set_property", "--project", TEST_PROJECT, "--params",
            "kind=Item,property=category,value=changed", "--output", str(tmp_path / "out")]
    dry = console(args, tmp_path, env)
    assert dry.returncode == 0, dry.stderr
    apply = re.search(r"^to apply it: (.*)$", dry.stdout, flags=re.M)
    assert apply and apply.group(1).startswith("datastore-mapper --job set_property "), dry.stdout
    applied = console(shlex.split(apply.group(1))[1:], tmp_path, env)
    assert applied.returncode == 0, applied.stderr
    assert {e["category"] for e in c.query(kind="Item").fetch()} == {"changed"}
    m = re.search(r"^undo log: .* \(restore with: (.*)\)$", applied.stdout, flags=re.M)
    assert m, applied.stdout
    restore = shlex.split(m.group(1))
    assert restore[:3] == ["datastore-mapper", "--job", "restore_entities"], restore

    r = console([*restore[1:], "--progress_seconds", "0.2"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    assert {e.key.id: e["category"] for e in c.query(kind="Item").fetch()} == before
    header = r.stdout.splitlines()[0]
    assert re.match(r"job restore_entities: 20 entities in 1 namespace, \d+\.\d s ", header), \
        r.stdout
    assert "ranges" not in r.stdout, r.stdout
    progress = [line for line in r.stderr.splitlines() if line.startswith("progress:")]
    assert progress and len(progress) == len(set(progress)), r.stderr
    assert not any("listing namespaces" in line for line in progress), r.stderr
    assert "restoring from the undo log" in r.stderr, r.stderr
