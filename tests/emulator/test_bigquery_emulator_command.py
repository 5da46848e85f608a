"""``datastore-mapper bigquery-emulator``: a local BigQuery (bqemulator) for one's own data, run
as a user runs it: a subprocess with a TMPDIR of its own. It prints what to export, a real
``stream_entities`` run streams into it with those settings, the rows are queried back, and
Ctrl-C (SIGINT) or SIGTERM stops it with its whole process tree, leaving that TMPDIR empty (a
``--data_dir`` is kept, and the next start finds its tables). Offline: the server only gets the
DuckDB extension it needs from the local package (see devtools/bq_emulator.py)."""
from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from devtools.bq_emulator import unavailable_reason
from devtools.seed import NamespaceSpec, seed_dataset
from tests.support import TEST_PROJECT
from tests.support.processes import as_in_a_terminal, descendants, stop_tree

ROOT = Path(__file__).resolve().parents[2]
EXPORT = re.compile(r"^export BIGQUERY_EMULATOR_HOST=(127\.0\.0\.1:\d+)$")
SPEC = [NamespaceSpec("", 30), NamespaceSpec("t1", 12)]


@pytest.fixture(scope="module")
def bqemulator_installed() -> None:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"BigQuery emulator (bqemulator) unavailable: {reason}")


def _command() -> list:
    """The console script of this venv (pip made it from setup.py's entry point)."""
    script = Path(sys.executable).with_name("datastore-mapper")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.launch.cli"]






class Started:
    """``datastore-mapper bigquery-emulator --port 0 ...`` running with a private TMPDIR; its
    export line read."""

    def __init__(self, tmpdir: Path, *args: str):
        tmpdir.mkdir(exist_ok=True)
        self.tmpdir = tmpdir
        env = {k: v for k, v in os.environ.items() if k != "BIGQUERY_EMULATOR_HOST"}
        self.proc = subprocess.Popen(
            as_in_a_terminal([*_command(), "bigquery-emulator", "--port", "0", *args]),
            env={**env, "TMPDIR": str(tmpdir)}, cwd=tmpdir, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.lines: list = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            m = EXPORT.match(self.lines[-1])
            if m:
                self.host = m.group(1)
                self.lines += [self.proc.stdout.readline().rstrip("\n") for _ in range(2)]
                return
        self.proc.kill()
        raise AssertionError(f"no export line: {self.lines} {self.proc.stderr.read()[-3000:]}")

    def client(self, project: str):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(project=project, credentials=AnonymousCredentials(),
                               client_options={"api_endpoint": f"http://{self.host}"})

    def stop(self, sig: int) -> tuple:
        """Signal it; (exit code, stdout after the start, stderr, pids of its tree still alive)."""
        return stop_tree(self.proc, sig)


def _retry():
    from google.cloud import bigquery

    return bigquery.DEFAULT_RETRY.with_deadline(30)


def _shown(host: str, project: str, version: str) -> tuple:
    """What docs/stream-bigquery.md shows ``datastore-mapper bigquery-emulator --project demo``
    print (the lines before Ctrl-C, the line after), and the commands it shows run next, for
    this host, project and bqemulator version."""
    text = (ROOT / "docs" / "stream-bigquery.md").read_text(encoding="utf-8")
    block = re.search(r"```text\n\$ datastore-mapper bigquery-emulator --project demo\n(.*?)```",
                      text, re.S).group(1)
    lines = [line.replace("127.0.0.1:9050", host)
             .replace("bqemulator 1.4.0", f"bqemulator {version}")
             .replace("project demo", f"project {project}")
             .replace("demo:DATASET", f"{project}:DATASET") for line in block.splitlines()]
    ctrl_c = lines.index("^C")
    commands = re.search(r"```bash\n(export BIGQUERY_EMULATOR_HOST=.*?)```", text, re.S).group(1)
    return lines[:ctrl_c], lines[ctrl_c + 1:], [shlex.split(c) for c in commands.splitlines()]


def test_start_stream_query_and_ctrl_c_leaves_nothing(bqemulator_installed, emulator, tmp_path):
    import importlib.metadata

    written = seed_dataset(TEST_PROJECT, SPEC)
    server = Started(tmp_path / "tmp", "--project", TEST_PROJECT)
    try:
        started, stopped, (export, run) = _shown(server.host, TEST_PROJECT,
                                                 importlib.metadata.version("bqemulator"))
        assert server.lines == started, (server.lines, started)  # as the docs show it
        # As the docs show, in another shell: the export, then a run that streams (into a
        # project of its own: any project's tables can be made in it).
        assert export == ["export", "BIGQUERY_EMULATOR_HOST=127.0.0.1:9050"]
        env = {**os.environ, "BIGQUERY_EMULATOR_HOST": server.host}
        assert run[0] == "datastore-mapper" and "demo:exports.items_{namespace}" in run, run
        ran = subprocess.run([*_command(), *run[1:]], env=env, cwd=tmp_path, capture_output=True,
                             text=True, timeout=300)
        assert ran.returncode == 0, ran.stderr[-4000:]
        client = server.client(TEST_PROJECT)
        got = {}
        for ns, table in (("", "items___default__"), ("t1", "items_t1")):
            rows = client.query(f"SELECT __key__ FROM `demo.exports.{table}`",
                                retry=_retry(), timeout=30).result(timeout=30)
            got[ns] = Counter(tuple(x for p in r["__key__"]["path"]
                                    for x in (p["kind"], p["id"] or p["name"])) for r in rows)
        assert got == {ns: Counter(tuple(p) for p in paths) for ns, paths in written.items()}
    finally:
        code, out, err, left = server.stop(signal.SIGINT)  # Ctrl-C
    assert (code, left, err) == (0, [], ""), (code, left, err[-3000:])
    assert out.splitlines() == stopped == ["BigQuery emulator stopped; nothing kept."]
    assert list(server.tmpdir.iterdir()) == []  # no temp directory left (nor bqemu_uploads/)


@pytest.mark.emulator
def test_data_dir_is_kept_and_found_again_and_sigterm_stops_it(bqemulator_installed, tmp_path):
    from google.cloud import bigquery

    data = tmp_path / "bqdata"
    server = Started(tmp_path / "tmp", "--project", "p1", "--data_dir", str(data))
    try:
        assert f"data in {data} (kept)." in server.lines[0], server.lines
        client = server.client("p1")
        client.create_dataset("p1.keep", retry=_retry(), timeout=30)
        table = client.create_table(bigquery.Table(
            "p1.keep.t", schema=[bigquery.SchemaField("a", "STRING")]), retry=_retry(), timeout=30)
        assert client.insert_rows_json(table, [{"a": "x"}, {"a": "y"}], retry=_retry(),
                                       timeout=30) == []
    finally:
        code, out, err, left = server.stop(signal.SIGTERM)
    assert (code, left) == (0, []), (code, left, err[-3000:])
    assert out == f"BigQuery emulator stopped; its data is kept in {data}.\n"
    assert list(server.tmpdir.iterdir()) == [] and any(data.iterdir())
    again = Started(tmp_path / "tmp", "--project", "p1", "--data_dir", str(data))
    try:
        rows = again.client("p1").list_rows("p1.keep.t", retry=_retry(), timeout=30)
        assert sorted(r["a"] for r in rows) == ["x", "y"]
    finally:
        code, _, err, left = again.stop(signal.SIGTERM)
    assert (code, left) == (0, []), (code, left, err[-3000:])
    assert list(again.tmpdir.iterdir()) == []


@pytest.mark.emulator
def test_check_says_it_can_start_here(bqemulator_installed, tmp_path):
    done = subprocess.run([*_command(), "bigquery-emulator", "check"], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"bqemulator \S+ available \(duckdb v\S+, spatial extension \S+"
                        r"spatial\.duckdb_extension\)\n", done.stdout), done.stdout
    assert done.stderr == "" and list(tmp_path.iterdir()) == []  # it started nothing


@pytest.mark.emulator
def test_a_taken_port_is_one_error_line(bqemulator_installed, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([*_command(), "bigquery-emulator", "--port", str(port)],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path,
                              env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.splitlines() == [
        f"error: port {port} on 127.0.0.1 is in use (another emulator?): pass --port N, or "
        "--port 0 for a free one"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.emulator
def test_a_server_that_dies_is_said_and_nothing_is_left(bqemulator_installed, tmp_path):
    server = Started(tmp_path / "tmp")
    (child,) = descendants(server.proc.pid)
    os.kill(child, signal.SIGKILL)  # as the kernel's OOM killer would
    out, err = server.proc.communicate(timeout=60)
    assert server.proc.returncode == 1, (out, err)
    assert err.startswith("error: the BigQuery emulator exited by itself; its log:\n"), err
    assert out == "BigQuery emulator stopped; nothing kept.\n"
    assert list(server.tmpdir.iterdir()) == []


@pytest.mark.emulator
def test_a_given_workdir_is_kept_and_can_start_it_again(bqemulator_installed, tmp_path,
                                                        monkeypatch):
    """The fixtures' and the benchmark's way: their own directory, kept by stop(); a second
    start there finds the first one's extension link (and replaces it). Its own directory,
    made in TMPDIR, is removed."""
    from devtools.bq_emulator import BigQueryEmulatorProcess

    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr("tempfile.tempdir", None)  # read TMPDIR again
    for _ in range(2):
        with BigQueryEmulatorProcess("p", tmp_path / "work") as server:
            assert server.running and server.log == tmp_path / "work" / "server.log"
        assert not server.running and (tmp_path / "work" / "server.log").exists()
    with BigQueryEmulatorProcess("p") as server:
        own = server.workdir
        assert own is not None and own.parent == tmp_path / "tmp"
    assert list((tmp_path / "tmp").iterdir()) == []


def _round_trip(tmpdir: str) -> dict:
    """Start the command, make a table, insert two rows, read them back, Ctrl-C: what happened.
    Run inside a network namespace of its own by the test below."""
    from google.cloud import bigquery

    server = Started(Path(tmpdir), "--project", "offline")
    rows, errors = [], None
    try:
        client = server.client("offline")
        client.create_dataset("offline.d", retry=_retry(), timeout=30)
        schema = [bigquery.SchemaField("a", "STRING")]
        table = client.create_table(bigquery.Table("offline.d.t", schema=schema), retry=_retry(),
                                    timeout=30)
        errors = client.insert_rows_json(table, [{"a": "x"}, {"a": "y"}], retry=_retry(),
                                         timeout=30)
        rows = sorted(r["a"] for r in client.list_rows(table, retry=_retry(), timeout=30))
    finally:
        code, out, err, left = server.stop(signal.SIGINT)
    return {"rows": rows, "errors": errors, "code": code, "out": out, "err": err, "left": left,
            "tmp": os.listdir(tmpdir)}


@pytest.mark.emulator
def test_it_needs_no_network(bqemulator_installed, tmp_path):
    """In a network namespace with nothing but loopback (no route to DuckDB's extension site, no
    DNS): it starts, takes rows and stops clean."""
    probe = subprocess.run(["unshare", "-n", "ip", "link", "set", "lo", "up"],
                           capture_output=True, text=True, timeout=30) \
        if shutil.which("unshare") and shutil.which("ip") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("no network namespace here (unshare -n needs root or CAP_SYS_ADMIN): "
                    f"{probe.stderr.strip() if probe else 'unshare or ip missing'}")
    script = ("import json, sys; from tests.emulator.test_bigquery_emulator_command import "
              "_round_trip; print(json.dumps(_round_trip(sys.argv[1])))")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    done = subprocess.run(["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                           sys.executable, "-c", script, str(tmpdir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    got = json.loads(done.stdout.splitlines()[-1])
    assert got == {"rows": ["x", "y"], "errors": [], "code": 0, "err": "", "left": [], "tmp": [],
                   "out": "BigQuery emulator stopped; nothing kept.\n"}, got


@pytest.mark.parametrize("args, said", [
    (["--port", "-1"], "error: argument --port: '-1' is not a port: give 0 to 65535 (0: any "
                       "free port) (see datastore-mapper bigquery-emulator start --help)"),
    (["--port", "0", "--data_dir", "FILE"], "error: --data_dir FILE is not a directory: give a "
                                            "directory (made if missing) for the emulator's data"),
])
def test_bad_arguments_are_one_error_line(tmp_path, args, said):
    if "--data_dir" in args and unavailable_reason() is not None:
        pytest.skip(f"needs bqemulator installed: {unavailable_reason()}")
    (tmp_path / "FILE").write_text("not a directory")
    done = subprocess.run([*_command(), "bigquery-emulator", *args], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.splitlines() == [said]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FILE"]


def _site_packages_without(tmp_path: Path, *missing: str) -> Path:
    """A directory of links to this interpreter's installed packages, minus ``missing``: an
    installation that really lacks them (used with ``python -S``, which skips site-packages)."""
    import sysconfig

    site = Path(sysconfig.get_paths()["purelib"])
    farm = tmp_path / "site"
    farm.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if not any(name == m or name.startswith(m + "-") or name.startswith(m + ".")
                   for m in missing):
            (farm / entry.name).symlink_to(entry)
    return farm


@pytest.mark.parametrize("missing, said", [
    (("bqemulator",), "the bqemulator package is not installed: pip install -e '.[test]'"),
    (("duckdb_extension_spatial",), "the DuckDB spatial extension is missing"),
])
def test_a_missing_package_is_one_error_line_saying_what_to_install(tmp_path, missing, said):
    if missing != ("bqemulator",) and unavailable_reason() is not None:
        pytest.skip(f"needs bqemulator installed, without {missing}: {unavailable_reason()}")
    farm = _site_packages_without(tmp_path, *missing)
    env = {**os.environ, "PYTHONPATH": str(farm), "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    for args in (["bigquery-emulator", "--port", "0"], ["bigquery-emulator", "check"]):
        done = subprocess.run([sys.executable, "-S", "-m", "pipeline.launch.cli", *args],
                              capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
        assert done.returncode == 1 and done.stdout == "", (args, done)
        lines = done.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            "error: the BigQuery emulator cannot start here: ") and said in lines[0], (args, lines)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_the_console_script_dispatches_it(monkeypatch):
    import devtools.bq_emulator
    from pipeline.launch import cli

    calls = []
    monkeypatch.setattr(devtools.bq_emulator, "_main", lambda a, prog: calls.append((a, prog)) or 7)
    assert cli.console_main(["bigquery-emulator"]) == 7
    assert cli.console_main(["bigquery-emulator", "--port", "0"]) == 7
    assert cli.console_main(["bigquery-emulator", "check"]) == 7
    assert cli.console_main(["bigquery-emulator", "--help"]) == 7
    prog = "datastore-mapper bigquery-emulator"
    assert calls == [(["start"], prog), (["start", "--port", "0"], prog), (["check"], prog),
                     (["--help"], prog)]
