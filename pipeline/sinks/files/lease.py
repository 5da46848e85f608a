"""A run's lease on its output (``OUTPUT/JOB/.lease.json``): a live run is never mistaken for
the leftovers of a dead one, and of two runs started at the same moment exactly one proceeds.

The launcher takes the lease before anything is written (``take``): a compare-and-swap against
what its plan saw there (nothing, or a dead run's lease): an exclusive create locally under a
lock on the job directory, ``if_generation_match`` on Cloud Storage. While the run goes on the
lease is renewed (a heartbeat): by the launcher itself for a local run, by the workers for a
remote one. The last step of a run that completed releases it; a local run that failed ends it
(``end``: kept, marked failed, naming the files the run left). A lease is alive while its
heartbeat is younger than its ``ttl`` and it has not ended; a local run's lease also names its
host and process, so on that host a killed run is recognised as dead at once. What a dead run
left is then the next run's to clear, and only what its records name (``ownership``).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import socket
import threading
import time
from typing import Optional

from apache_beam.io.filesystems import FileSystems

from pipeline.errors import UsageError
from pipeline.sinks.files.layout import LEASE_FILE, job_dir, job_path

log = logging.getLogger(__name__)

#: A local launcher renews every 30 s; its lease is dead 2 minutes after the last renewal.
LOCAL_HEARTBEAT, LOCAL_TTL = 30.0, 120.0
#: Remote workers renew every minute; a remote lease is dead 15 minutes after the last one
#: (Dataflow takes minutes to start its first worker).
REMOTE_HEARTBEAT, REMOTE_TTL = 60.0, 900.0


class LeaseTaken(UsageError):
    """Another run took the lease between this run's plan and its take (a start at the same
    moment): this run must not touch the output."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def process_start(pid: int) -> Optional[str]:
    """When the process started (Linux: /proc), so a reused pid is not taken for the run."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def lease_path(output: str, job_name: str) -> str:
    return job_path(output, job_name, LEASE_FILE)


def _gcs_blob(path: str):
    # google-cloud-storage only for gs:// outputs (a local run does not import it)
    from google.cloud import storage

    bucket, _, name = path[len("gs://"):].partition("/")
    return storage.Client().bucket(bucket).blob(name)


@contextlib.contextmanager
def _locked(output: str, job_name: str):
    """Locally: an exclusive lock on the job directory (created if missing), held while a lease
    is compared and written, so two processes never interleave there. Cloud Storage needs none:
    its writes are conditional on the object's generation."""
    if output.startswith("gs://"):
        yield
        return
    where = job_dir(output, job_name)
    os.makedirs(where, exist_ok=True)
    fd = os.open(where, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _read_raw(output: str, job_name: str) -> tuple[Optional[bytes], object]:
    """(the lease's bytes or None, its version: the bytes locally, the generation on GCS)."""
    path = lease_path(output, job_name)
    if path.startswith("gs://"):
        blob = _gcs_blob(path)
        try:
            data = blob.download_as_bytes()
        except Exception as e:  # NotFound: no lease
            if type(e).__name__ == "NotFound":
                return None, 0
            raise
        return data, blob.generation
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return None, None
    return data, data


def _parse(data: Optional[bytes], path: str) -> Optional[dict]:
    if data is None:
        return None
    try:
        lease = json.loads(data.decode("utf-8"))
        return lease if isinstance(lease, dict) else None
    except ValueError as e:
        log.warning("could not read the lease %s (%s): treating it as expired", path, e)
        return None


def read_lease(output: str, job_name: str) -> Optional[dict]:
    lease, _ = read_versioned(output, job_name)
    return lease


def read_versioned(output: str, job_name: str) -> tuple[Optional[dict], object]:
    """The lease (None if absent or unreadable) and its version, which ``take`` compares."""
    path = lease_path(output, job_name)
    try:
        data, version = _read_raw(output, job_name)
    except OSError as e:
        log.warning("could not read the lease %s (%s): treating it as expired", path, e)
        return None, None
    return _parse(data, path), version


def _write(output: str, job_name: str, lease: dict, version: object = None) -> None:
    """Write the lease whole (never a half-written file a reader could see); on Cloud Storage
    only if its generation is still ``version`` (0: only if there is none)."""
    path = lease_path(output, job_name)
    data = json.dumps(lease, indent=2).encode("utf-8")
    if path.startswith("gs://"):
        _gcs_blob(path).upload_from_string(data, content_type="application/json",
                                           if_generation_match=version)
        return
    tmp = f"{path}.{os.getpid()}-{threading.get_ident()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _conflict(e: Exception) -> bool:
    return type(e).__name__ in ("PreconditionFailed", "Conflict")


def take(output: str, job_name: str, run_id: str, local: bool,
         identity: Optional[dict] = None, expected: object = None,
         kept: tuple = ()) -> dict:
    """Take the lease for this run, only if it is still what the plan saw (``expected``: the
    version ``read_versioned`` gave, None for no lease). ``identity`` (the job, parameters and
    query) lets a resumed run be checked against a run that died before it completed any
    namespace; ``kept``: the files of an earlier run this one keeps (a resumed run's), which
    are then this run's too. Raises ``LeaseTaken`` if another run got there first."""
    now = _now().isoformat()
    lease = {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
             "pid_start": process_start(os.getpid()), "runner": "local" if local else "remote",
             "started": now, "heartbeat": now, "ttl": LOCAL_TTL if local else REMOTE_TTL,
             **(identity or {})}
    if kept:
        lease["files"] = sorted(kept)
    where = job_dir(output, job_name)
    with _locked(output, job_name):
        current, version = read_versioned(output, job_name)
        gcs = output.startswith("gs://")
        if (version or None) != (expected or None):
            who = (f"run {current.get('run_id')}" if current else "another run")
            raise LeaseTaken(f"{where} was taken by {who} while this run was being launched "
                             "(two runs started into one output at the same moment): nothing "
                             "was written; wait for it, or choose another --output")
        try:
            _write(output, job_name, lease, (version or 0) if gcs else None)
        except Exception as e:
            if _conflict(e):
                raise LeaseTaken(f"{where} was taken by another run while this run was being "
                                 "launched (two runs started into one output at the same "
                                 "moment): nothing was written; choose another --output, or "
                                 "wait for it") from None
            raise
    return lease


def _update(output: str, job_name: str, run_id: str, change) -> bool:
    """Rewrite this run's lease through ``change`` (dict -> dict, or None to delete it), only
    while it is this run's: never another run's that took over. True if done."""
    with _locked(output, job_name):
        lease, version = read_versioned(output, job_name)
        if lease is None or lease.get("run_id") != run_id:
            return False
        new = change(lease)
        path = lease_path(output, job_name)
        if new is None:
            if path.startswith("gs://"):
                _gcs_blob(path).delete(if_generation_match=version)
            else:
                os.remove(path)
        else:
            _write(output, job_name, new, version if path.startswith("gs://") else None)
        return True


def renew(output: str, job_name: str, lease: dict) -> None:
    _update(output, job_name, lease["run_id"], lambda held: {**held, "heartbeat": _now().isoformat()})


def release(output: str, job_name: str, run_id: str) -> None:
    """Remove the lease if it is this run's (never another run's): the run completed, and its
    summary.json is now its record."""
    try:
        _update(output, job_name, run_id, lambda held: None)
    except Exception as e:  # the next run sees it expired; say so, do not fail for it
        log.warning("could not release the lease on %s: %s", output, e)


def end(output: str, job_name: str, run_id: str, status: str, files: list[str]) -> None:
    """A run that stopped without completing (failed, interrupted): its lease stays as its
    record, marked ended (dead at once), naming the ``files`` it left under OUTPUT/JOB (paths
    relative to it), which the next run may clear because this record names them."""
    def ended(held: dict) -> dict:
        return {**held, "ended": _now().isoformat(), "status": status,
                "files": sorted(set(held.get("files", [])) | set(files))}
    try:
        _update(output, job_name, run_id, ended)
    except Exception as e:
        log.warning("could not record the end of the run on %s: %s", output, e)


def alive(lease: dict, now: Optional[dt.datetime] = None) -> tuple[bool, str]:
    """Whether the run holding ``lease`` may still be running, and why (for messages)."""
    now = now or _now()
    try:
        beat = dt.datetime.fromisoformat(lease["heartbeat"])
        age = (now - beat).total_seconds()
        ttl = float(lease.get("ttl", REMOTE_TTL))
    except (KeyError, ValueError, TypeError):
        return False, "its lease is unreadable"
    who = (f"run {lease.get('run_id')} ({lease.get('runner', '?')}, host {lease.get('host')}, "
           f"pid {lease.get('pid')}, started {lease.get('started')})")
    if lease.get("ended"):
        return False, f"{who} ended {lease.get('status', '')} at {lease['ended']}"
    if lease.get("runner") == "local" and lease.get("host") == socket.gethostname():
        pid = lease.get("pid")
        started = process_start(pid) if isinstance(pid, int) else None
        if started is None or started != lease.get("pid_start"):
            return False, f"{who} is no longer running on this host"
        return True, f"{who} is still running on this host"
    if age > ttl:
        return False, f"{who} last renewed its lease {age:.0f} s ago (dead after {ttl:.0f} s)"
    return True, f"{who} renewed its lease {age:.0f} s ago"


class Heartbeat:
    """Renews a lease every ``every`` seconds from a daemon thread (a local launcher)."""

    def __init__(self, output: str, job_name: str, lease: dict, every: float = LOCAL_HEARTBEAT):
        self.output, self.job_name, self.lease, self.every = output, job_name, lease, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                renew(self.output, self.job_name, self.lease)
            except Exception as e:  # a missed renewal is not a failed run
                log.warning("could not renew the lease on %s: %s", self.output, e)


class WorkerHeartbeat:
    """A remote run's renewals, from the workers: at most once per ``every`` seconds per
    process, whoever calls ``maybe_renew`` (the reading step does, per slice)."""

    _last: dict = {}
    _lock = threading.Lock()

    @classmethod
    def maybe_renew(cls, output: str, job_name: str, run_id: str,
                    every: float = REMOTE_HEARTBEAT) -> None:
        now = time.monotonic()
        with cls._lock:
            if now - cls._last.get(run_id, float("-inf")) < every:
                return
            cls._last[run_id] = now
        lease = read_lease(output, job_name)
        if lease is None or lease.get("run_id") != run_id:
            return  # released (the run completed), or not ours: never take another run's
        try:
            renew(output, job_name, lease)
        except Exception as e:
            log.warning("could not renew the lease on %s: %s", output, e)
