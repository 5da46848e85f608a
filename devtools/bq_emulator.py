"""The BigQuery emulator (`bqemulator`, PyPI), started offline in a process group of its own.

Offline, bqemulator only starts when DuckDB finds its `spatial` extension locally, so the server
gets a HOME of its own (only in its environment) holding a link to the extension shipped by the
PyPI package `duckdb-extension-spatial` (same version as `duckdb`, both pinned in the test extra).
It also gets a TMPDIR of its own: bqemulator keeps `bqemu_uploads/` in the system temp directory
otherwise. Both live in one private directory that stop() removes, so nothing is left behind.
Used by the tests' fixture (tests/support/bigquery_emulator.py), the demo, the streaming
benchmark and the console script:

    datastore-mapper bigquery-emulator [start] [--port N] [--project P] [--data_dir DIR]
    datastore-mapper bigquery-emulator check   # can it start here? (does not start it)

(``python -m devtools.bq_emulator`` takes the same arguments.)
"""

from __future__ import annotations

import argparse
import atexit
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TextIO

from devtools.emulator import LOOPBACK, _port_in_use

START_TIMEOUT = 60.0
DEFAULT_PORT = 9050  # bqemulator's own default, and the usual BIGQUERY_EMULATOR_HOST port
INSTALL = ("pip install -e '.[test]' (the project's test extra), or pip install bqemulator "
           "duckdb-extension-spatial (of the same version as duckdb)")


class BigQueryEmulatorUnavailable(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _duckdb_platform() -> str:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    system = {"darwin": "osx"}.get(sys.platform, sys.platform)
    return f"{system}_{arch}"


def unavailable_reason() -> str | None:
    """Why bqemulator cannot run offline here, or None."""
    if importlib.util.find_spec("bqemulator") is None:
        return f"the bqemulator package is not installed: {INSTALL}"
    if importlib.util.find_spec("google.cloud.bigquery") is None:
        return "google-cloud-bigquery is not installed: pip install google-cloud-bigquery"
    extension, detail = _spatial_extension()
    return None if extension is not None else detail


def status() -> str:
    """One line for .ci/run: whether the fixtures can start bqemulator (without starting it)."""
    reason = unavailable_reason()
    if reason is not None:
        return f"unavailable: {reason}"
    extension, version = _spatial_extension()
    return (f"bqemulator {importlib.metadata.version('bqemulator')} available "
            f"(duckdb {version}, spatial extension {extension})")


def _spatial_extension() -> tuple[Path | None, str]:
    """(the spatial extension file matching the installed duckdb, "v<version>"), or (None, reason)."""
    spec = importlib.util.find_spec("duckdb_extension_spatial")
    if spec is None or not spec.submodule_search_locations:
        return None, ("the DuckDB spatial extension is missing (bqemulator needs it offline): "
                      "pip install duckdb-extension-spatial of the same version as duckdb (the "
                      "test extra pins both)")
    try:
        version = "v" + importlib.metadata.version("duckdb")
    except importlib.metadata.PackageNotFoundError:
        return None, "duckdb is not installed"
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    extension = package_dir / "extensions" / version / "spatial.duckdb_extension"
    if not extension.is_file():
        shipped = sorted(p.parent.name for p in package_dir.glob("extensions/*/spatial.duckdb_extension"))
        return None, (f"the DuckDB spatial extension for duckdb {version} is missing (duckdb-extension-spatial "
                      f"ships {shipped or 'none'}): pin duckdb and duckdb-extension-spatial to the same version")
    return extension, version


def _command() -> list[str]:
    exe = Path(sys.executable).with_name("bqemulator")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bqemulator"]


def _log_tail(log: Path, limit: int = 4000) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return text[-limit:] or "(empty log)"


def _wait_ready(proc: subprocess.Popen, endpoint: str, project: str, timeout: float) -> None:
    url = f"{endpoint}/bigquery/v2/projects/{project}/datasets"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"bqemulator exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                json.load(response)
                return
        except (OSError, ValueError):  # refused, reset, timed out, HTTP error, not JSON yet
            time.sleep(0.1)
    raise RuntimeError(f"bqemulator did not answer on {url} within {timeout:.0f} s")


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server's whole process group (it runs in a session of its own)."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            # The leader is gone; make sure no child of it survives either.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            break
        except subprocess.TimeoutExpired:
            continue
    if proc.returncode is None:
        proc.wait(timeout=10)


class BigQueryEmulatorProcess:
    """bqemulator on local ports; ``host`` is the value for ``--bigquery_emulator_host`` /
    ``BIGQUERY_EMULATOR_HOST``. In memory, or with ``data_dir`` in a DuckDB file there (kept after
    stop(), found again by the next start). ``port`` None or 0: a free one.

    Its private directory (``workdir``: the extension's HOME, its TMPDIR, its log) is a fresh
    temp directory removed by stop(), unless the caller gave one. An atexit hook stops it if the
    caller forgets."""

    def __init__(self, project: str, workdir: str | Path | None = None, *, port: int | None = None,
                 data_dir: str | Path | None = None):
        self.project = project
        self._own_dir = workdir is None
        self.workdir: Path | None = Path(workdir) if workdir is not None else None
        self.fixed_port = port or None
        self.data_dir = Path(data_dir).expanduser().resolve() if data_dir is not None else None
        self.proc: subprocess.Popen | None = None
        self.host = self.endpoint = ""

    @property
    def log(self) -> Path | None:
        return self.workdir / "server.log" if self.workdir is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> "BigQueryEmulatorProcess":
        reason = unavailable_reason()
        if reason is not None:
            raise BigQueryEmulatorUnavailable(
                f"BigQuery emulator (bqemulator) unavailable: {reason}")
        cmd: list[str] = []
        try:
            cmd = self._launch()
            _wait_ready(self.proc, self.endpoint, self.project, START_TIMEOUT)
        except RuntimeError as exc:
            where = "" if self._own_dir else f" {self.log}"
            tail = self.log_tail()
            self.stop()
            raise RuntimeError(f"BigQuery emulator (bqemulator) did not start: {exc}\n"
                               f"command: {' '.join(cmd)}\n"
                               f"its log{where}, last lines:\n{tail}") from None
        except BaseException:  # Ctrl-C while it starts: nothing left running or on disk
            self.stop()
            raise
        return self

    def _launch(self) -> list[str]:
        extension, version = _spatial_extension()
        assert extension is not None
        if self._own_dir:
            self.workdir = Path(tempfile.mkdtemp(prefix="bqemulator-"))
        assert self.workdir is not None
        atexit.register(self.stop)
        home = self.workdir / "home"  # DuckDB looks for extensions in $HOME/.duckdb
        extension_dir = home / ".duckdb" / "extensions" / version / _duckdb_platform()
        extension_dir.mkdir(parents=True, exist_ok=True)
        _link_or_copy(extension, extension_dir / extension.name)
        tmp = self.workdir / "tmp"  # bqemulator's bqemu_uploads/ goes here, not in the system's
        tmp.mkdir(exist_ok=True)
        port, grpc_port = self.fixed_port or _free_port(), _free_port()
        self.host = f"{LOOPBACK}:{port}"
        self.endpoint = f"http://{self.host}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BQEMU_")}
        env.update(HOME=str(home), TMPDIR=str(tmp), NO_GCE_CHECK="true",
                   GCE_METADATA_HOST="127.0.0.1:1", GCE_METADATA_IP="127.0.0.1:1")
        if self.data_dir is None:
            storage = ["--ephemeral"]
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            storage = ["--persistent", "--data-dir", str(self.data_dir)]
        cmd = _command() + ["start", "--rest-host", LOOPBACK, "--rest-port", str(port),
                            "--grpc-host", LOOPBACK, "--grpc-port", str(grpc_port),
                            "--project", self.project, *storage, "--log-level", "warning"]
        assert self.log is not None
        with open(self.log, "wb") as out:
            # cwd: bqemulator also reads a .bqemu.toml from its working directory.
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir, env=env,
                                         start_new_session=True)
        return cmd

    def log_tail(self) -> str:
        return _log_tail(self.log) if self.log is not None else "(no log)"

    def stop(self) -> None:
        """Stop the server's process group and remove its private directory. Idempotent."""
        proc, self.proc = self.proc, None
        if proc is not None:
            _stop(proc)
        if self._own_dir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        atexit.unregister(self.stop)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _link_or_copy(source: Path, target: Path) -> None:
    """A symlink (the extension is 78 MB); a copy where links are not allowed. A workdir given
    again (a restart) has one already."""
    target.unlink(missing_ok=True)
    try:
        target.symlink_to(source)
    except OSError:
        shutil.copyfile(source, target)


def _stop_on_signal(signum, frame) -> None:
    raise KeyboardInterrupt


def serve(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``start``: run an emulator for one's own data in the foreground until Ctrl-C (or SIGTERM,
    SIGHUP); then its process group is stopped and its private temp directory removed (a
    ``--data_dir`` is kept)."""
    out = out or sys.stdout
    reason = unavailable_reason()
    if reason is not None:
        print(f"error: the BigQuery emulator cannot start here: {reason}", file=sys.stderr)
        return 1
    if args.data_dir is not None and Path(args.data_dir).expanduser().exists() \
            and not Path(args.data_dir).expanduser().is_dir():
        print(f"error: --data_dir {args.data_dir} is not a directory: give a directory (made "
              "if missing) for the emulator's data", file=sys.stderr)
        return 2
    if args.port and _port_in_use(args.port):
        print(f"error: port {args.port} on {LOOPBACK} is in use (another emulator?): pass "
              "--port N, or --port 0 for a free one", file=sys.stderr)
        return 2
    emu = BigQueryEmulatorProcess(args.project, port=args.port, data_dir=args.data_dir)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop_on_signal)
    try:
        try:
            emu.start()
        except RuntimeError as exc:  # the first line says it; the log's tail follows
            print(f"error: {exc}", file=sys.stderr)
            return 1
        except OSError as exc:  # its directories could not be made
            print(f"error: the BigQuery emulator could not be prepared: {exc}", file=sys.stderr)
            return 1
        where = (f"data in {emu.data_dir} (kept)" if emu.data_dir is not None
                 else "in memory (gone when it stops; --data_dir DIR keeps it)")
        print(f"BigQuery emulator (bqemulator {importlib.metadata.version('bqemulator')}) for "
              f"project {args.project} on {emu.host}, {where}.", file=out)
        print("In another shell, point the mapper at it (no credentials needed):", file=out)
        print(f"export BIGQUERY_EMULATOR_HOST={emu.host}", file=out)
        print(f"or pass --bigquery_emulator_host {emu.host}; name the tables "
              f"--bigquery_table {args.project}:DATASET.TABLE", file=out)
        print("Ctrl-C stops it.", file=out, flush=True)
        while emu.running:
            time.sleep(0.2)
        print(f"error: the BigQuery emulator exited by itself; its log:\n{emu.log_tail()}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C waits
            signal.signal(sig, signal.SIG_IGN)
        emu.stop()
        kept = f"its data is kept in {emu.data_dir}" if emu.data_dir is not None else "nothing kept"
        print(f"BigQuery emulator stopped; {kept}.", file=out, flush=True)


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port: give 0 to 65535 (0: any free port)")
    return port


class _Parser(argparse.ArgumentParser):
    """argparse, with a bad argument said in one ``error:`` line (what is accepted is in it)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _main(argv: list[str] | None = None, prog: str = "python -m devtools.bq_emulator") -> int:
    parser = _Parser(
        prog=prog, description="A local BigQuery emulator (bqemulator), offline: start one for "
        "your own data, or check that it can start here.", allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="say whether it can start here (exit 1 if not); does not start it")
    start = sub.add_parser("start", help="start it and print what to export; Ctrl-C stops it",
                           allow_abbrev=False)
    start.add_argument("--project", default=os.environ.get("DATASTORE_PROJECT_ID", "demo"),
                       help="the default project of its requests (default: "
                       "$DATASTORE_PROJECT_ID or demo, as the mapper's --project on the emulator)")
    start.add_argument("--port", type=_port, default=DEFAULT_PORT,
                       help=f"port on {LOOPBACK} (default {DEFAULT_PORT}; 0: any free port)")
    start.add_argument("--data_dir", help="keep the data in a DuckDB file in this directory "
                       "(made if missing; kept, and found again by the next start); default: "
                       "in memory, nothing kept")
    args = parser.parse_args(argv)
    if args.command == "start":
        return serve(args)
    reason = unavailable_reason()
    if reason is not None:
        print(f"error: the BigQuery emulator cannot start here: {reason}", file=sys.stderr)
        return 1
    print(status())
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m devtools.bq_emulator``: as ``datastore-mapper bigquery-emulator``."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0].startswith("-") and args[0] not in ("-h", "--help"):
        args = ["start", *args]
    return _main(args)


if __name__ == "__main__":
    sys.exit(main())
