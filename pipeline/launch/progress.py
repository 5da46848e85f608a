"""A run's progress as the CLI shows it: a local run's from its workers' events, a remote run's
from its job's metrics.

**A local run** (``watching``): the workers' progress events folded into one job-wide view,
shown as a live bar on a terminal (``rich``) or as plain ``progress:`` lines otherwise (CI,
logs). ``p.run()`` blocks the launcher's main thread and the workers are other processes, so a
thread here reads the events files of the run's progress directory (``pipeline.graph.progress``)
a few times a second; ``pipeline.core.progress`` estimates the total and the time left.

**A remote run** (``RemoteWait``, ``--wait``): followed on a remote runner (Dataflow) until it
ends, printing the same ``progress:`` lines as a local run, from the job's metrics. A remote
run's workers cannot reach the launcher's progress channel, so the figures come from the Beam
counters the steps keep for that (``datastore_mapper.JOB.progress``: ``namespaces``,
``namespaces_planned``, ``namespaces_done``, ``ranges``, ``ranges_done``, ``sample_gaps``,
``sample_gaps_read``) and the job's own (``datastore_mapper.JOB``: ``entities``, ``records``,
``errors``, ``writes.*``), polled every few seconds (``attempted`` values: what the workers have
reported so far). The estimate is the job-wide one: entities read × sample gaps planned / gaps
passed, scaled up for namespaces not planned yet (coarser than a local run's, which estimates
each unit on its own). Tested against a fake result (``tests/unit/test_remote_wait.py``):
nothing here can run a real Dataflow job.
"""
from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import sys
import threading
import time
from typing import Callable, Iterator, Optional

from pipeline.core import terminal
from pipeline.core.progress import (
    ProgressState,
    Snapshot,
    UnitProgress,
    format_line,
    format_seconds,
    format_writes,
)

#: How often the files are read and a terminal's bar redrawn (seconds).
POLL = 0.25


class EventFiles:
    """Reads what was appended to each events file since the last call (whole lines)."""

    def __init__(self, directory: str):
        self.directory = directory
        self._offsets: dict = {}
        self._partial: dict = {}

    def read(self) -> Iterator[dict]:
        try:
            names = sorted(os.listdir(self.directory))
        except OSError:
            return
        for name in names:
            if not name.endswith(".jsonl"):
                continue
            path = os.path.join(self.directory, name)
            try:
                with open(path, "rb") as f:
                    f.seek(self._offsets.get(name, 0))
                    data = f.read()
            except OSError:
                continue
            self._offsets[name] = self._offsets.get(name, 0) + len(data)
            data = self._partial.pop(name, b"") + data
            lines = data.split(b"\n")
            if lines[-1]:
                self._partial[name] = lines[-1]  # a line still being written
            for line in lines[:-1]:
                try:
                    yield json.loads(line)
                except ValueError:
                    continue


#: What a run does before its first namespace is listed (a restore lists none: it reads files).
LISTING = "listing namespaces"


def plain_line(snap: Snapshot, idle: str = LISTING) -> str:
    """The plain ``progress:`` line; before any namespace is known, ``idle`` (what the run is
    doing), or once it has finished, how long it took."""
    if snap.namespaces is None:
        return (f"progress: done in {format_seconds(snap.elapsed)}" if snap.finished
                else f"progress: {idle}")
    return format_line(snap)


class PlainView:
    """A ``progress:`` line every ``every`` seconds (never the same line twice in a row), and a
    last one at the end."""

    def __init__(self, write: Callable[[str], None], every: float, idle: str = LISTING):
        self.write, self.every, self.idle = write, every, idle
        self._last: Optional[float] = None
        self._said = ""

    def show(self, snap: Snapshot, now: float) -> None:
        if self._last is None:
            self._last = now
        if now - self._last >= self.every:
            self._last = now
            self._say(plain_line(snap, self.idle))

    def close(self, snap: Optional[Snapshot]) -> None:
        if snap is not None:
            self._say(plain_line(snap, self.idle))

    def _say(self, line: str) -> None:
        if line != self._said:
            self._said = line
            self.write(line)


class LiveView:
    """A live bar (``rich``): entities of the estimated total, rate, time left, ranges and
    namespaces. Log lines printed meanwhile go above it."""

    def __init__(self, stream, title: str, idle: str = LISTING):
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        self.console = Console(file=stream, stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[counts]}"), console=self.console, transient=False,
            refresh_per_second=4, redirect_stdout=False, redirect_stderr=False)
        self.task = self.progress.add_task(title, total=None, counts=idle)
        self._streams: list = []

    def start(self) -> None:
        from rich.file_proxy import FileProxy

        self.progress.start()
        proxy = FileProxy(self.console, self.console.file)
        for h in logging.getLogger().handlers:
            if isinstance(h, logging.StreamHandler) and h.stream is self.console.file:
                self._streams.append(h)
                h.setStream(proxy)
        self._saved_stderr, sys.stderr = sys.stderr, proxy

    def show(self, snap: Snapshot, now: float) -> None:
        total = snap.estimated if not snap.finished else snap.entities
        self.progress.update(self.task, completed=snap.entities, total=total,
                             counts=terminal.escape(live_counts(snap)))

    def close(self, snap: Optional[Snapshot]) -> None:
        if snap is not None:
            self.show(snap, time.monotonic())
        self.progress.stop()
        sys.stderr = self._saved_stderr
        for h in self._streams:
            h.setStream(self.console.file)


def live_counts(s: Snapshot) -> str:
    """The text beside the bar."""
    est = f"~{s.estimated:,}" if s.estimated is not None and not s.finished else "?"
    parts = [f"{s.entities:,}/{s.entities if s.finished else est} entities"]
    if s.rate is not None:
        parts.append(f"{s.rate:,.0f}/s")
    if s.finished:
        parts.append(f"done in {format_seconds(s.elapsed)}")
    elif s.eta is not None:
        parts.append(f"ETA {format_seconds(s.eta)}")
    parts.append(f"ranges {s.ranges_done}/{s.ranges}")
    if s.namespaces is not None:
        parts.append(f"namespaces {s.namespaces_done}/{s.namespaces}")
    if s.errors:
        parts.append(f"{s.errors:,} failed")
    if s.write_mode:
        parts.append(format_writes(s))
    return " · ".join(parts)


class Watcher:
    """The thread that reads the events and keeps the view up to date."""

    def __init__(self, directory: str, view, started: float,
                 write_mode: Optional[str] = None):
        self.files, self.view = EventFiles(directory), view
        self.state = ProgressState(started, write_mode)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)
        self.last: Optional[Snapshot] = None

    def _tick(self) -> Snapshot:
        for event in self.files.read():
            self.state.apply(event)
        now = time.monotonic()
        self.last = self.state.snapshot(now)
        return self.last

    def _run(self) -> None:
        while not self._stop.wait(POLL):
            try:
                self.view.show(self._tick(), time.monotonic())
            except Exception as e:  # progress must never take the run down
                logging.getLogger(__name__).debug("progress: %s", e)

    def start(self) -> "Watcher":
        if hasattr(self.view, "start"):
            self.view.start()
        self._thread.start()
        return self

    def stop(self, finished: bool) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.state.finished = finished
        snap = self._tick() if finished else None
        self.view.close(snap)


def choose_view(stream, every: float, title: str, idle: str = LISTING):
    """A live bar on a terminal, plain lines elsewhere; None when progress is off (0).
    ``idle``: what the run does before its first namespace is listed."""
    if every <= 0:
        return None
    if _is_terminal(stream) and os.environ.get("TERM") != "dumb":
        return LiveView(stream, title, idle)
    return PlainView(lambda line: print(terminal.escape(line), file=stream, flush=True), every,
                     idle)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


@contextlib.contextmanager
def watching(directory: Optional[str], every: float, title: str,
             started: Optional[float] = None,
             write_mode: Optional[str] = None,
             idle: str = LISTING) -> Iterator[Optional[Watcher]]:
    """Watch the run while the block runs (the block is ``p.run()``); ``write_mode``: the
    job writes back (``dry_run``, ``transactional``, ``blind``), its writes are shown;
    ``idle``: what the run does before its first namespace is listed."""
    view = choose_view(sys.stderr, every, title, idle) if directory else None
    if view is None:
        yield None
        return
    watcher = Watcher(directory, view, started or time.monotonic(), write_mode).start()
    ok = False
    try:
        yield watcher
        ok = True
    finally:
        watcher.stop(finished=ok)


# --- a remote run (--wait): its progress from the job's metrics ---------------------------------

#: Seconds between two polls of the job's metrics, at least (the metrics API has quotas).
MIN_POLL = 10.0
#: The runner's states a job does not leave (``PipelineState``'s names).
TERMINAL = frozenset({"DONE", "FAILED", "CANCELLED", "UPDATED", "DRAINED"})
PROGRESS = "progress"


def counter_values(result, job_metrics_namespace: str) -> dict:
    """The run's counters so far: ``name`` (the job's namespace) and ``progress.name``."""
    from apache_beam.metrics.metric import MetricsFilter

    out: dict = {}
    progress_ns = f"{job_metrics_namespace}.{PROGRESS}"
    for ns, prefix in ((job_metrics_namespace, ""), (progress_ns, f"{PROGRESS}.")):
        counters = result.metrics().query(MetricsFilter().with_namespace(ns))["counters"]
        for c in counters:
            value = c.attempted if c.attempted is not None else c.committed
            name = prefix + c.key.metric.name
            out[name] = out.get(name, 0) + int(value or 0)
    return out


class MetricsProgress(ProgressState):
    """The job-wide view folded from counters instead of events."""

    def __init__(self, started: float, write_mode: Optional[str] = None):
        super().__init__(started, write_mode)
        self._done = 0

    def fold(self, values: dict) -> None:
        p = lambda name: int(values.get(f"{PROGRESS}.{name}", 0))  # noqa: E731
        if f"{PROGRESS}.namespaces" in values:
            self.namespaces = p("namespaces")
        self.planned = {f"#{i}" for i in range(p("namespaces_planned"))}
        self._done = p("namespaces_done")
        entities = int(values.get("entities", 0))
        unit = UnitProgress("", ranges=p("ranges"), gaps=float(p("sample_gaps")),
                            entities=entities, gaps_done=float(p("sample_gaps_read")),
                            ranges_done=p("ranges_done"))
        self.units = {"job": unit} if unit.ranges else {}
        self.entities = entities
        self.records = int(values.get("records", 0))
        self.errors = int(values.get("errors", 0))
        self.writes = collections.Counter({name.split(".", 1)[1]: int(n)
                                           for name, n in values.items()
                                           if name.startswith("writes.") and n})

    def namespaces_done(self) -> int:
        return self._done


class RemoteWait:
    """Poll ``result`` (a Beam ``PipelineResult``: ``.state``, ``.metrics()``) until its job
    ends; ``write`` gets each new progress line. ``clock`` and ``sleep`` are injectable."""

    def __init__(self, result, job_metrics_namespace: str, write: Callable[[str], None],
                 every: float = MIN_POLL, write_mode: Optional[str] = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.result, self.ns, self.write = result, job_metrics_namespace, write
        self.every = max(every, MIN_POLL)
        self.clock, self.sleep = clock, sleep
        self.state = MetricsProgress(clock(), write_mode)
        self.last: Optional[Snapshot] = None
        self._said = ""

    def poll(self) -> str:
        """One poll: the job's state (its name), the line said if it changed."""
        state = state_name(self.result.state)
        try:
            self.state.fold(counter_values(self.result, self.ns))
        except Exception as e:  # a metrics hiccup must not end the wait
            self.write(f"progress: (metrics not available: {type(e).__name__}: {e})")
            return state
        self.state.finished = state == "DONE"
        self.last = self.state.snapshot(self.clock())
        line = format_line(self.last)
        if line != self._said:
            self._said = line
            self.write(line)
        return state

    def run(self) -> str:
        """Poll until the job is in a terminal state; returns that state's name."""
        while True:
            state = self.poll()
            if state in TERMINAL:
                return state
            self.sleep(self.every)


def state_name(state) -> str:
    """``PipelineState.RUNNING`` or ``"RUNNING"`` -> ``"RUNNING"``."""
    return str(getattr(state, "name", state)).rsplit(".", 1)[-1].upper()
