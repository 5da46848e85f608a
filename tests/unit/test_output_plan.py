"""What a launch decides about ``OUTPUT/JOB`` (``pipeline.sinks.files.prepare``) and the lease
it takes (``pipeline.sinks.files.lease``), on local directories."""
from __future__ import annotations

import datetime as dt
import json
import os
import socket

import pytest

from pipeline.errors import UsageError
from pipeline.sinks.files import lease
from pipeline.sinks.files.prepare import plan_output, take_output
from tests.support.configs import run_config


def config(out, *args):
    return run_config("export_keys", "--output", str(out), *args, host="127.0.0.1:9")


def write(path, text="x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_an_empty_output_is_taken_with_a_lease(tmp_path):
    run = config(tmp_path / "out")
    plan = plan_output(run)
    assert not (tmp_path / "out").exists()  # planning writes nothing
    held = take_output(plan, local=True)
    on_disk = json.loads((tmp_path / "out/export_keys/.lease.json").read_text())
    assert on_disk["run_id"] == run.output.run_id == held["run_id"]
    assert on_disk["pid"] == os.getpid() and on_disk["host"] == socket.gethostname()
    assert lease.alive(on_disk)[0]
    lease.release(str(tmp_path / "out"), "export_keys", "another-run")  # not ours: kept
    assert (tmp_path / "out/export_keys/.lease.json").exists()
    lease.release(str(tmp_path / "out"), "export_keys", run.output.run_id)
    assert not (tmp_path / "out/export_keys/.lease.json").exists()


def test_a_complete_output_is_refused_replaced_or_not_resumed(tmp_path):
    job = tmp_path / "out/export_keys"
    write(job / "summary.json", json.dumps({"status": "succeeded", "run_id": "r1"}))
    write(job / "namespaces/acme.jsonl")
    with pytest.raises(UsageError, match="already holds output of a previous run"):
        plan_output(config(tmp_path / "out"))
    with pytest.raises(UsageError, match="nothing to resume"):
        plan_output(config(tmp_path / "out"), "resume")
    plan = plan_output(config(tmp_path / "out"), "replace")
    assert (job / "namespaces/acme.jsonl").exists()  # removed only when taken
    take_output(plan)
    assert sorted(os.listdir(job)) == [".lease.json"]


def test_a_dead_runs_leftovers_are_cleared_and_its_dead_letters_kept(tmp_path):
    job = tmp_path / "out/export_keys"
    write(job / "summary.json", json.dumps({"status": "failed", "run_id": "r0"}))
    write(job / "namespaces/acme.jsonl")
    write(job / ".shards-r0/acme-00000-of-00001")
    letter = {"source": "job", "namespace": "acme", "kind": "Item", "key": ["Item", 1]}
    write(job / ".dead_letters-r0/slice-1.jsonl", json.dumps(letter) + "\n")
    write(job / "dead_letter.jsonl", json.dumps(letter) + "\n")  # the same letter, composed
    stale = {"run_id": "r0", "host": socket.gethostname(), "pid": 2 ** 22 + 17,  # no such pid
             "pid_start": "1", "runner": "local", "started": "x",
             "heartbeat": dt.datetime.now(dt.timezone.utc).isoformat(), "ttl": 120}
    write(job / ".lease.json", json.dumps(stale))
    run = config(tmp_path / "out")
    take_output(plan_output(run))
    left = sorted(str(p.relative_to(job)) for p in job.rglob("*") if p.is_file())
    assert left == [".lease.json", "failed-runs/r0/dead_letter.jsonl"]
    kept = (job / "failed-runs/r0/dead_letter.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in kept] == [letter]  # once
    assert json.loads((job / ".lease.json").read_text())["run_id"] == run.output.run_id


def test_a_live_lease_refuses_every_mode(tmp_path):
    out = tmp_path / "out"
    take_output(plan_output(config(out)), local=True)  # this very process: alive
    write(out / "export_keys/namespaces/acme.jsonl")
    for mode in ("refuse", "replace", "resume"):
        with pytest.raises(UsageError, match="being written by another run.*still running"):
            plan_output(config(out), mode)


def test_a_remote_lease_is_alive_until_its_ttl():
    now = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
    held = {"run_id": "r", "runner": "remote", "host": "launcher-vm", "pid": 1,
            "heartbeat": (now - dt.timedelta(seconds=600)).isoformat(), "ttl": 900}
    assert lease.alive(held, now)[0]
    assert not lease.alive({**held, "ttl": 300}, now)[0]
    assert not lease.alive({"run_id": "r"}, now)[0]  # unreadable: dead


def test_an_output_that_is_a_file_or_not_writable_is_refused(tmp_path):
    write(tmp_path / "file.txt")
    with pytest.raises(UsageError, match="is a file, not a directory"):
        plan_output(config(tmp_path / "file.txt"))
    with pytest.raises(UsageError, match="local directory or gs://"):
        plan_output(config("s3://bucket/x"))


def test_resuming_a_run_that_completed_nothing_checks_its_lease(tmp_path):
    """A dead run that completed no namespace left no manifest: its lease says what it ran, and
    a resume with other parameters is refused as when it had completed some."""
    out = tmp_path / "out"
    dead = config(out, "--params", "full=true")
    take_output(plan_output(dead), local=True)
    job = out / "export_keys"
    held = json.loads((job / ".lease.json").read_text())
    assert held["job"] == "export_keys" and held["params"] == {"full": "true"}
    assert held["query"] == dead.read.query.fingerprint()
    write(job / ".lease.json", json.dumps({**held, "pid": 2 ** 22 + 17}))  # its process died
    write(job / ".shards-r0/acme-00000-of-00001")
    with pytest.raises(UsageError, match="another params"):
        plan_output(config(out, "--params", "full=false"), "resume")
    plan = plan_output(config(out, "--params", "full=true"), "resume")
    assert plan.run.output.resumed == () and plan.clear
