"""``--wait``: follow a run on a remote runner (Dataflow) until it ends, printing the same
``progress:`` lines as a local run, from the job's metrics.

A remote run's workers cannot reach the launcher's progress channel, so the figures come from
the Beam counters the steps keep for that (``datastore_mapper.JOB.progress``: ``namespaces``,
``namespaces_planned``, ``namespaces_done``, ``ranges``, ``ranges_done``, ``sample_gaps``,
``sample_gaps_read``) and the job's own (``datastore_mapper.JOB``: ``entities``, ``records``,
``errors``, ``writes.*``), polled every few seconds (``attempted`` values: what the workers have
reported so far). The estimate is the job-wide one: entities read × sample gaps planned / gaps
passed, scaled up for namespaces not planned yet (coarser than a local run's, which estimates
each unit on its own).

Tested against a fake result (``tests/unit/test_remote_wait.py``): nothing here can run a real
Dataflow job.
"""
from __future__ import annotations

import collections
import time
from typing import Callable, Optional

from pipeline.core.progress import ProgressState, Snapshot, UnitProgress, format_line

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
