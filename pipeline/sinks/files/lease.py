"""A run's lease on its output (``OUTPUT/JOB/.lease.json``): a live run is never mistaken for
the leftovers of a dead one.

The launcher writes the lease before anything is read; while the run goes on it is renewed (a
heartbeat): by the launcher itself for a local run (it waits for the run), by the workers for a
remote one (the launcher is gone). The last step of a run that completed releases it. A lease
is alive while its heartbeat is younger than its ``ttl``; a local run's lease also names its
host and process, so on that host a killed run is recognised as dead at once, not after the
time-out. What a dead run left is then the next run's to clear (``layout.prepare_output``).
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
from typing import Optional

from apache_beam.io.filesystems import FileSystems

from pipeline.sinks.files.layout import job_path

log = logging.getLogger(__name__)

LEASE_FILE = ".lease.json"
#: A local launcher renews every 30 s; its lease is dead 2 minutes after the last renewal.
LOCAL_HEARTBEAT, LOCAL_TTL = 30.0, 120.0
#: Remote workers renew every minute; a remote lease is dead 15 minutes after the last one
#: (Dataflow takes minutes to start its first worker).
REMOTE_HEARTBEAT, REMOTE_TTL = 60.0, 900.0


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


def read_lease(output: str, job_name: str) -> Optional[dict]:
    path = lease_path(output, job_name)
    try:
        if not FileSystems.exists(path):
            return None
        with FileSystems.open(path) as f:
            return json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as e:
        log.warning("could not read the lease %s (%s): treating it as expired", path, e)
        return None


def _write(output: str, job_name: str, lease: dict) -> None:
    with FileSystems.create(lease_path(output, job_name)) as f:
        f.write(json.dumps(lease, indent=2).encode("utf-8"))


def take(output: str, job_name: str, run_id: str, local: bool,
         identity: Optional[dict] = None) -> dict:
    """Write this run's lease (the output's writability is proven by it). ``identity`` (the
    job, parameters and query) lets a resumed run be checked against a run that died before it
    completed any namespace (it left no manifest to check against)."""
    now = _now().isoformat()
    lease = {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid(),
             "pid_start": process_start(os.getpid()), "runner": "local" if local else "remote",
             "started": now, "heartbeat": now, "ttl": LOCAL_TTL if local else REMOTE_TTL,
             **(identity or {})}
    _write(output, job_name, lease)
    return lease


def renew(output: str, job_name: str, lease: dict) -> None:
    _write(output, job_name, {**lease, "heartbeat": _now().isoformat()})


def release(output: str, job_name: str, run_id: str) -> None:
    """Remove the lease if it is this run's (never another run's)."""
    lease = read_lease(output, job_name)
    if lease is not None and lease.get("run_id") == run_id:
        try:
            FileSystems.delete([lease_path(output, job_name)])
        except Exception as e:  # the next run sees it expired; say so, do not fail for it
            log.warning("could not release the lease on %s: %s", output, e)


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
