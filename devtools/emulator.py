"""Run the real Cloud Datastore emulator (the Java one shipped with the Google Cloud SDK).

Why not the Firestore emulator in Datastore mode: it rejects `__namespace__`/`__kind__` queries and
returns no `__scatter__` keys, so nothing could be split on it.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

SCRIPT_RELPATH = Path("platform", "cloud-datastore-emulator", "cloud_datastore_emulator")
# Tried after `gcloud info` and $CLOUDSDK_ROOT_DIR (module-level so tests can replace it).
COMMON_SDK_ROOTS: tuple[str, ...] = (
    "/usr/lib/google-cloud-sdk",
    "/usr/share/google-cloud-sdk",
    "/opt/google-cloud-sdk",
    "/google-cloud-sdk",
    "/snap/google-cloud-cli/current",
    "/snap/google-cloud-sdk/current",
    "~/google-cloud-sdk",
)
INSTALL_HINT = (
    "Google Cloud SDK with the Cloud Datastore emulator not found: install the Google Cloud SDK and "
    "the `cloud-datastore-emulator` component (gcloud components install cloud-datastore-emulator, "
    "or apt package google-cloud-cli-datastore-emulator), plus Java 11+; or set CLOUDSDK_ROOT_DIR "
    "to the SDK root."
)
DEFAULT_JAVA_TOOL_OPTIONS = "-Xmx512m"  # without it the JVM may take a quarter of RAM
LOOPBACK = "127.0.0.1"


class EmulatorUnavailable(Exception):
    """The emulator is not installed here (tests skip on this, they do not fail)."""


class EmulatorError(RuntimeError):
    """The emulator is installed but misbehaved (died, timed out, bad reset): a real failure."""


def _sdk_root_from_gcloud(timeout: float = 10.0) -> str | None:
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    try:
        out = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    root = out.stdout.strip()
    return root if out.returncode == 0 and root else None


def find_emulator_script() -> str:
    """Return the path of `cloud_datastore_emulator`, or raise EmulatorUnavailable saying what to install."""
    roots = [_sdk_root_from_gcloud(), os.environ.get("CLOUDSDK_ROOT_DIR"), *COMMON_SDK_ROOTS]
    tried: list[str] = []
    for root in roots:
        if not root:
            continue
        script = Path(root).expanduser() / SCRIPT_RELPATH
        tried.append(str(script))
        if script.is_file() and os.access(script, os.X_OK):
            break
    else:
        raise EmulatorUnavailable(f"{INSTALL_HINT} Looked for: {', '.join(tried) or 'nothing'}.")
    java = os.environ.get("JAVA", "java")  # the script honours $JAVA
    if shutil.which(java) is None:
        raise EmulatorUnavailable(
            f"Java not found ({java!r} is not on PATH): the Cloud Datastore emulator at {script} "
            "needs a Java 11+ runtime (e.g. apt package openjdk-17-jre-headless)."
        )
    return str(script)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _group_members(pgid: int) -> set[int]:
    """Live (non-zombie) processes of a process group; /proc based, killpg(0) fallback."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return set()
        return {pgid}
    members: set[int] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.add(int(entry.name))
    return members


def _signal(pid: int, sig: signal.Signals, group: bool = False) -> None:
    try:
        os.killpg(pid, sig) if group else os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class DatastoreEmulator:
    """One emulator process on a free loopback port (or ``port``), strongly consistent; in memory,
    or with ``data_dir`` stored on disk there (kept after stop(), reused by the next start).

    Use as a context manager, or call start()/stop(). An atexit hook stops it if the caller forgets.
    """

    def __init__(
        self,
        project: str = "test-project",
        *,
        startup_timeout: float = 60.0,
        java_tool_options: str | None = None,
        consistency: float = 1.0,
        data_dir: str | os.PathLike[str] | None = None,
        port: int | None = None,
    ) -> None:
        self.project = project
        self.data_dir = Path(data_dir).expanduser().resolve() if data_dir is not None else None
        self.fixed_port = port
        self.startup_timeout = startup_timeout
        # Overridable per instance or with $DATASTORE_EMULATOR_JAVA_TOOL_OPTIONS.
        self.java_tool_options = java_tool_options or os.environ.get(
            "DATASTORE_EMULATOR_JAVA_TOOL_OPTIONS", DEFAULT_JAVA_TOOL_OPTIONS)
        self.consistency = consistency  # 1.0: the default 0.9 makes fresh puts invisible to queries
        self.port: int | None = None
        self.workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the value for DATASTORE_EMULATOR_HOST."""
        if self.port is None:
            raise EmulatorError("emulator not started")
        return f"{LOOPBACK}:{self.port}"

    @property
    def pgid(self) -> int | None:
        """Process group of the wrapper script and its Java child (None when stopped)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        return self.workdir / "emulator.log" if self.workdir is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def env(self) -> dict[str, str]:
        """Environment variables that point google-cloud-datastore and Beam at this emulator."""
        return {"DATASTORE_EMULATOR_HOST": self.host, "DATASTORE_PROJECT_ID": self.project}

    def start(self) -> DatastoreEmulator:
        """Start and wait until `GET /` answers `Ok`; retries a port lost to a race once or twice."""
        if self._proc is not None:
            return self
        script = find_emulator_script()
        for attempt in range(3 if self.fixed_port is None else 1):
            try:
                self._launch(script)
                self._wait_ready()
                return self
            except EmulatorError as exc:
                log = self._log_tail()
                self.stop()
                if attempt < 2 and ("BindException" in log or "already in use" in log):
                    continue
                raise EmulatorError(f"{exc}\n--- emulator log (tail) ---\n{log}") from None
        raise AssertionError("unreachable")

    def _launch(self, script: str) -> None:
        self.port = self.fixed_port or _free_port()
        # Fresh cwd: the emulator writes WEB-INF/appengine-generated/ into its working directory.
        self.workdir = Path(tempfile.mkdtemp(prefix="datastore-emulator-"))
        env = {**os.environ, "JAVA_TOOL_OPTIONS": self.java_tool_options}
        args = [script, "start", f"--host={LOOPBACK}", f"--port={self.port}",
                f"--consistency={self.consistency}"]
        if self.data_dir is None:
            args.append("--store_on_disk=false")
        else:  # a project directory of the emulator's own: created once, then reused
            self._create_data_dir(script, env)
            args += ["--store_on_disk=true", str(self.data_dir)]
        with open(self.workdir / "emulator.log", "wb") as log:
            self._proc = subprocess.Popen(
                args, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,  # own group: stop() kills Java too
            )
        atexit.register(self.stop)

    def _create_data_dir(self, script: str, env: dict[str, str]) -> None:
        """``cloud_datastore_emulator create`` into an empty or missing ``data_dir`` (as
        ``gcloud beta emulators datastore start`` does); a directory with data is reused."""
        assert self.data_dir is not None
        if self.data_dir.is_dir() and any(self.data_dir.iterdir()):
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self.data_dir.is_dir():
            self.data_dir.rmdir()  # `create` wants to make it itself
        out = subprocess.run([script, "create", f"--project_id={self.project}", str(self.data_dir)],
                             cwd=self.workdir, env=env, stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=self.startup_timeout)
        if out.returncode != 0 or not self.data_dir.is_dir():
            raise EmulatorError(f"could not create the emulator's data directory {self.data_dir}: "
                                f"{(out.stdout + out.stderr).strip()[-2000:]}")

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmulatorError(f"emulator exited with code {self._proc.returncode} during startup")
            try:
                with urllib.request.urlopen(f"http://{self.host}/", timeout=2) as resp:
                    if resp.read().strip() == b"Ok":
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise EmulatorError(f"emulator not ready on {self.host} after {self.startup_timeout:.0f} s")

    def _log_tail(self, lines: int = 40) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def reset(self) -> None:
        """Delete all data (POST /reset): much faster than a restart between tests."""
        req = urllib.request.Request(f"http://{self.host}/reset", data=b"", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            raise EmulatorError(f"reset failed: {exc}") from exc
        if status != 200:
            raise EmulatorError(f"reset failed: HTTP {status}")

    def stop(self, grace: float = 5.0) -> None:
        """Stop the wrapper script and its Java child, and remove the temp dir. Idempotent.

        Java is signalled first so the still-living wrapper reaps it: killing the wrapper first
        would orphan Java, and where PID 1 does not reap orphans it would stay a zombie.
        """
        proc, self._proc = self._proc, None
        if proc is not None:
            pgid = proc.pid
            members = _group_members(pgid) - {pgid}
            for pid in members:
                _signal(pid, signal.SIGTERM)
            if not members:
                _signal(pgid, signal.SIGTERM, group=True)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline:
                if proc.poll() is not None and not _group_members(pgid):
                    break
                if proc.poll() is not None:  # wrapper gone, stragglers left
                    _signal(pgid, signal.SIGTERM, group=True)
                time.sleep(0.05)
            else:
                _signal(pgid, signal.SIGKILL, group=True)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
        atexit.unregister(self.stop)

    def __enter__(self) -> DatastoreEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


#: Where ``start`` keeps its data by default: one emulator project directory per project.
def default_data_dir(project: str, environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    base = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base, "datastore-mapper", "emulator", project)


DEFAULT_PORT = 8081  # gcloud's


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def serve(args: argparse.Namespace, out=None) -> int:
    """``start``: run an emulator for one's own data until Ctrl-C (or SIGTERM, SIGHUP), which
    stops it with its whole process tree (the wrapper script and Java)."""
    out = out or sys.stdout
    data_dir = None if args.in_memory else Path(args.data_dir or default_data_dir(args.project))
    if args.port and _port_in_use(args.port):
        print(f"error: port {args.port} on {LOOPBACK} is in use (another emulator?): pass "
              "--port N, or --port 0 for a free one", file=sys.stderr)
        return 2
    emu = DatastoreEmulator(project=args.project, consistency=args.consistency,
                            data_dir=data_dir, port=args.port or None)

    def stop_on(signum, frame):
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop_on)
    try:
        try:
            emu.start()
        except EmulatorUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        where = (f"data in {data_dir} (kept; --in_memory for none)" if data_dir is not None
                 else "in memory (gone when it stops)")
        print(f"Datastore emulator for project {args.project} on {emu.host}, {where}, "
              f"consistency {args.consistency}.", file=out)
        print("In another shell, point the mapper (and devtools.seed) at it:", file=out)
        print(f"export DATASTORE_EMULATOR_HOST={emu.host} DATASTORE_PROJECT_ID={args.project}",
              file=out)
        print("Ctrl-C stops it.", file=out, flush=True)
        while emu.running:
            time.sleep(0.2)
        print(f"error: the emulator exited by itself; its log:\n{emu._log_tail()}",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stopping the emulator ...", file=out, flush=True)
        return 0
    finally:
        emu.stop(grace=15.0)  # on disk: give Java time to write its data out


def _main(argv: list[str] | None = None, prog: str = "python -m devtools.emulator") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description="The Cloud Datastore emulator: start one for your own data, "
        "or check that it is installed.", allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="print the emulator script's path (exit 1 if not installed)")
    start = sub.add_parser(
        "start", help="start an emulator and print the variables to export; Ctrl-C stops it",
        allow_abbrev=False)
    start.add_argument("--project", default=os.environ.get("DATASTORE_PROJECT_ID", "demo"),
                       help="the project id the data lives in (default: $DATASTORE_PROJECT_ID "
                       "or demo)")
    start.add_argument("--data_dir", help="where the data is stored on disk (default: "
                       "$XDG_DATA_HOME/datastore-mapper/emulator/PROJECT, else "
                       "~/.local/share/...); reused by the next start")
    start.add_argument("--in_memory", action="store_true",
                       help="keep nothing on disk: the data is gone when it stops")
    start.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help=f"port on {LOOPBACK} (default {DEFAULT_PORT}; 0: any free port)")
    start.add_argument("--consistency", type=float, default=1.0,
                       help="fraction of eventually consistent reads that see the latest "
                       "write (default 1.0: every query sees what was just written)")
    args = parser.parse_args(argv)
    if args.command == "start":
        return serve(args)
    try:
        print(find_emulator_script())
    except EmulatorUnavailable as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
