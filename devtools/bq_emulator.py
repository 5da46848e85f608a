"""The BigQuery emulator (`bqemulator`, PyPI), started offline in a process group of its own.

Offline, bqemulator only starts when DuckDB finds its `spatial` extension locally, so the server
gets a HOME of its own (only in its environment) holding a copy of the extension shipped by the
PyPI package `duckdb-extension-spatial` (same version as `duckdb`, both pinned in the test extra).
Used by the tests' fixture (tests/bigquery_emulator.py), the demo and the streaming benchmark.

    python -m devtools.bq_emulator check   # can it start here? (does not start it)
"""

from __future__ import annotations

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

START_TIMEOUT = 60.0


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
        return "pip install bqemulator (the test extra)"
    if importlib.util.find_spec("google.cloud.bigquery") is None:
        return "google-cloud-bigquery is not installed"
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
        return None, "the DuckDB spatial extension is missing: pip install duckdb-extension-spatial (the test extra)"
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
    """bqemulator in memory on free local ports; ``host`` is the value for
    ``--bigquery_emulator_host`` / ``BIGQUERY_EMULATOR_HOST``."""

    def __init__(self, project: str, workdir: str | Path | None = None):
        self.project = project
        self._own_dir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="bqemulator-"))
        self.proc: subprocess.Popen | None = None
        self.host = self.endpoint = ""
        self.log = self.workdir / "server.log"

    def start(self) -> "BigQueryEmulatorProcess":
        reason = unavailable_reason()
        if reason is not None:
            raise BigQueryEmulatorUnavailable(f"BigQuery emulator (bqemulator) unavailable: {reason}")
        extension, version = _spatial_extension()
        home = self.workdir / "home"  # DuckDB looks for extensions in $HOME/.duckdb
        extension_dir = home / ".duckdb" / "extensions" / version / _duckdb_platform()
        extension_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(extension, extension_dir / extension.name)
        port, grpc_port = _free_port(), _free_port()
        self.host = f"127.0.0.1:{port}"
        self.endpoint = f"http://{self.host}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("BQEMU_")}
        env.update(HOME=str(home), NO_GCE_CHECK="true", GCE_METADATA_HOST="127.0.0.1:1",
                   GCE_METADATA_IP="127.0.0.1:1")
        cmd = _command() + ["start", "--rest-host", "127.0.0.1", "--rest-port", str(port),
                            "--grpc-host", "127.0.0.1", "--grpc-port", str(grpc_port),
                            "--project", self.project, "--ephemeral", "--log-level", "warning"]
        with open(self.log, "wb") as out:
            # cwd: bqemulator also reads a .bqemu.toml from its working directory.
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, cwd=self.workdir, env=env,
                                         start_new_session=True)
        try:
            _wait_ready(self.proc, self.endpoint, self.project, START_TIMEOUT)
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"BigQuery emulator (bqemulator) did not start: {exc}\n"
                               f"command: {' '.join(cmd)}\nlog {self.log}, last lines:\n"
                               f"{_log_tail(self.log)}") from None
        return self

    def stop(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["check"]:
        print("usage: python -m devtools.bq_emulator check", file=sys.stderr)
        return 2
    print(status())
    return 0 if unavailable_reason() is None else 1


if __name__ == "__main__":
    sys.exit(main())
