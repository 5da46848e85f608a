"""--wait on a remote runner: the job's metrics polled and printed as progress lines until it
ends, then its summary. Against a fake PipelineResult (state and metrics() as Beam's
DataflowPipelineResult has them): nothing here can run a real Dataflow job."""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os

from pipeline.core.summary import build_summary
from pipeline.core.totals import Totals
from pipeline.launch import launcher
from pipeline.launch.progress import RemoteWait, counter_values, state_name
from tests.support.configs import run_config

NS = "datastore_mapper.count_keys"


@dataclasses.dataclass
class _Name:
    name: str


@dataclasses.dataclass
class _Key:
    metric: _Name


@dataclasses.dataclass
class _Counter:
    key: _Key
    committed: object
    attempted: object


class FakeResult:
    """Each poll (a read of ``state``) moves to the next stage: (state, {namespace: {name: n}})."""

    def __init__(self, stages):
        self.stages, self.i = stages, -1
        self.queries = []

    @property
    def state(self):
        self.i = min(self.i + 1, len(self.stages) - 1)
        return self.stages[self.i][0]

    def metrics(self):
        return self

    def query(self, f):
        (ns,) = f._namespaces
        self.queries.append(ns)
        values = self.stages[self.i][1].get(ns, {})
        # Dataflow: attempted while running; committed may be None until the end.
        return {"counters": [_Counter(_Key(_Name(k)), None, v) for k, v in values.items()]}


def _stage(state, namespaces=None, planned=0, done=0, ranges=0, ranges_done=0, gaps=0,
           gaps_read=0, entities=0, **job):
    progress = {"namespaces_planned": planned, "namespaces_done": done, "ranges": ranges,
                "ranges_done": ranges_done, "sample_gaps": gaps, "sample_gaps_read": gaps_read}
    if namespaces is not None:
        progress["namespaces"] = namespaces
    return (state, {NS: {"entities": entities, **{k.replace("__", "."): v
                                                  for k, v in job.items()}},
                    f"{NS}.progress": progress})


class Clock:
    def __init__(self):
        self.t = 100.0
        self.slept = []

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.slept.append(s)
        self.t += s


STAGES = [
    _stage("PENDING"),
    _stage("RUNNING", namespaces=3),
    _stage("RUNNING", namespaces=3, planned=3, ranges=10, gaps=100, gaps_read=25, entities=500),
    _stage("RUNNING", namespaces=3, planned=3, done=1, ranges=10, ranges_done=6, gaps=100,
           gaps_read=60, entities=1200),
    _stage("DONE", namespaces=3, planned=3, done=3, ranges=10, ranges_done=10, gaps=100,
           gaps_read=100, entities=2010, records=7),
]


def test_polls_until_the_job_ends_and_prints_the_progress_lines():
    clock, lines = Clock(), []
    w = RemoteWait(FakeResult(STAGES), NS, lines.append, every=5, clock=clock,
                   sleep=clock.sleep)
    assert w.run() == "DONE"
    assert clock.slept == [10.0] * 4  # every 10 s at least, whatever --progress_seconds says
    assert lines == [
        "progress: listing namespaces",
        "progress: namespaces 0/3 planned, 0 done; ranges 0/0; 0 entities",
        "progress: namespaces 3/3 planned, 0 done; ranges 0/10; 500 of ~2,000 entities (25%); "
        "50/s; ETA 30 s",
        "progress: namespaces 3/3 planned, 1 done; ranges 6/10; 1,200 of ~2,000 entities "
        "(60%); 70/s; ETA 11 s",
        "progress: namespaces 3/3 planned, 3 done; ranges 10/10; 2,010 entities; 7 records; "
        "81/s; done in 40 s",
    ], lines


def test_unplanned_namespaces_scale_the_estimate_and_writes_are_shown():
    lines = []
    clock = Clock()
    stages = [_stage("RUNNING", namespaces=4, planned=3, ranges=4, gaps=40, gaps_read=10,
                     entities=100, writes__changed=30, writes__unchanged=70),
              _stage("CANCELLED", namespaces=4, planned=3, ranges=4, gaps=40, gaps_read=10,
                     entities=100, writes__changed=30)]
    w = RemoteWait(FakeResult(stages), NS, lines.append, write_mode="dry_run", clock=clock,
                   sleep=clock.sleep)
    assert w.run() == "CANCELLED"
    # 100 of 10/40 gaps: ~400 in the 3 planned namespaces, the 4th as their mean
    assert lines[0] == ("progress: namespaces 3/4 planned, 0 done; ranges 0/4; 100 of ~533 "
                        "entities (19%); dry run, would write 30 (changed 30)"), lines


def test_counter_values_read_both_namespaces_attempted_first():
    r = FakeResult([_stage("RUNNING", namespaces=2, entities=9, records=1)])
    _ = r.state
    values = counter_values(r, NS)
    assert values["entities"] == 9 and values["records"] == 1
    assert values["progress.namespaces"] == 2 and values["progress.ranges"] == 0
    assert sorted(set(r.queries)) == [NS, f"{NS}.progress"]


def test_state_names():
    class PipelineState:
        DONE = "DONE"

    assert state_name(PipelineState.DONE) == "DONE"
    assert state_name("JOB_STATE_RUNNING".replace("JOB_STATE_", "")) == "RUNNING"


def test_wait_for_remote_prints_the_summary_and_exits_with_the_job_s_outcome(tmp_path, capsys):
    run = run_config("count_keys", "--output", str(tmp_path))
    t0 = dt.datetime(2026, 11, 27, tzinfo=dt.timezone.utc)
    summary = build_summary("count_keys", "kind Item (keys only)", {}, t0,
                            t0 + dt.timedelta(seconds=40), {"": Totals()}, 1000)
    os.makedirs(os.path.dirname(run.output.summary_path), exist_ok=True)
    with open(run.output.summary_path, "w") as f:
        json.dump(summary, f)
    clock = Clock()
    code = launcher.wait_for_remote(FakeResult(STAGES), run, "DataflowRunner", clock=clock,
                               sleep=clock.sleep)
    out, err = capsys.readouterr()
    assert code == launcher.EXIT_OK
    assert "done in 40 s" in err.splitlines()[-1]
    assert out.startswith("job count_keys: 0 entities in 1 namespace")
    assert f"summary {run.output.summary_path}; report " in out
    failed = [*STAGES[:2], _stage("FAILED", namespaces=3)]
    clock = Clock()
    code = launcher.wait_for_remote(FakeResult(failed), run, "DataflowRunner", clock=clock,
                               sleep=clock.sleep)
    _, err = capsys.readouterr()
    assert code == launcher.EXIT_FAILED
    assert [ln for ln in err.splitlines() if ln.startswith("error:")] == [
        f"error: the job ended FAILED on DataflowRunner; its summary (if written) is "
        f"{run.output.summary_path}"]
