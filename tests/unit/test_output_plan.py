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
    write(job / "summary.json", json.dumps({"status": "succeeded", "run_id": "r1",
                                            "files": ["namespaces/acme.jsonl", "summary.json"]}))
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
    write(job / "summary.json", json.dumps({"status": "failed", "run_id": "r0",
                                            "files": ["namespaces/acme.jsonl",
                                                      "dead_letter.jsonl"]}))
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
    write(job / f".shards-{held['run_id']}/acme-00000-of-00001")
    with pytest.raises(UsageError, match="another params"):
        plan_output(config(out, "--params", "full=false"), "resume")
    plan = plan_output(config(out, "--params", "full=true"), "resume")
    assert plan.run.output.resumed == () and plan.clear


# --- Ownership: only this tool's files are ever deleted (issue 22) -------------------------


def tree(top):
    return sorted(str(p.relative_to(top)) for p in top.rglob("*") if p.is_file())


def dead_lease(job, run_id="r0", **more):
    write(job / ".lease.json", json.dumps({
        "run_id": run_id, "host": socket.gethostname(), "pid": 2 ** 22 + 17, "pid_start": "1",
        "runner": "local", "started": "x", "ttl": 120,
        "heartbeat": dt.datetime.now(dt.timezone.utc).isoformat(), **more}))


@pytest.mark.parametrize("mode", ["refuse", "replace", "resume"])
def test_a_file_no_run_recorded_is_never_deleted_the_launch_refuses_naming_it(tmp_path, mode):
    """A dead run's leftovers beside a user's own file: every mode refuses, nothing goes."""
    job = tmp_path / "out/export_keys"
    dead_lease(job)
    write(job / ".shards-r0/acme-00000-of-00001")
    write(job / "my-notes.txt", "mine")
    before = tree(job)
    with pytest.raises(UsageError, match=r"1 file\(s\) that no run of this tool recorded "
                                         r"writing: my-notes.txt"):
        plan_output(config(tmp_path / "out"), mode)
    assert tree(job) == before


def test_an_old_backup_copied_without_its_summary_is_not_taken_for_leftovers(tmp_path):
    """The files of a complete export, copied in without summary.json: nothing proves them
    this tool's, so the run refuses instead of clearing them (they were deleted before)."""
    job = tmp_path / "out/export_keys"
    for ns in ("acme", "globex", "__default__"):
        write(job / f"namespaces/{ns}.jsonl", '{"key": 1}\n')
    write(job / "manifests/acme.json", json.dumps({"run_id": "old", "output": "x"}))
    for mode in ("refuse", "replace", "resume"):
        with pytest.raises(UsageError, match=r"4 file\(s\) that no run of this tool"):
            plan_output(config(tmp_path / "out"), mode)
    assert len(tree(job)) == 4


def test_a_dead_runs_recorded_files_are_cleared_and_nothing_else(tmp_path):
    """What an ended lease names (a local run that failed), its temp directories and its
    manifests' files are cleared; the kept directories stay."""
    out = tmp_path / "out"
    job = out / "export_keys"
    dead_lease(job, files=["namespaces/acme.jsonl", "dead_letter.jsonl"], ended="x",
               status="failed")
    write(job / "namespaces/acme.jsonl")
    write(job / "namespaces/globex.jsonl")
    write(job / "manifests/globex.json", json.dumps(
        {"run_id": "r0", "output": str(job / "namespaces/globex.jsonl")}))
    write(job / "dead_letter.jsonl", "")
    write(job / ".dead_letters-r0/slice-1.jsonl", "")
    write(job / ".shards-r0/acme-00000-of-00001")
    write(job / "runs/r9/summary.json", "{}")
    write(job / "failed-runs/r8/dead_letter.jsonl", "")
    take_output(plan_output(config(out)))
    assert tree(job) == [".lease.json", "failed-runs/r0/dead_letter.jsonl",
                         "failed-runs/r8/dead_letter.jsonl", "runs/r9/summary.json"]


def test_a_complete_runs_summary_names_its_files_replace_removes_only_those(tmp_path):
    out = tmp_path / "out"
    job = out / "export_keys"
    write(job / "summary.json", json.dumps({"status": "succeeded", "run_id": "r1", "files": [
        "summary.json", "namespaces/acme.jsonl", "schema.json"]}))
    write(job / "namespaces/acme.jsonl")
    write(job / "schema.json")
    take_output(plan_output(config(out), "replace"))
    assert tree(job) == [".lease.json"]
    # the same with a stranger beside them: refused, nothing removed
    write(job / "summary.json", json.dumps({"status": "succeeded", "run_id": "r2",
                                            "files": ["summary.json"]}))
    (job / ".lease.json").unlink()
    write(job / "namespaces/acme.jsonl")
    with pytest.raises(UsageError, match="namespaces/acme.jsonl"):
        plan_output(config(out), "replace")
    assert tree(job) == ["namespaces/acme.jsonl", "summary.json"]


@pytest.mark.parametrize("where", ["job", "inside"])
def test_a_symbolic_link_in_the_output_is_refused_and_its_target_untouched(tmp_path, where):
    """OUTPUT/JOB, or a folder under it, a link to elsewhere: a clean-up through it would
    delete files outside the output (it did, in every mode)."""
    elsewhere = tmp_path / "precious"
    write(elsewhere / "namespaces/acme.jsonl", "keep me")
    write(elsewhere / "summary.json", json.dumps({"status": "failed", "run_id": "r0"}))
    job = tmp_path / "out/export_keys"
    if where == "job":
        job.parent.mkdir(parents=True)
        job.symlink_to(elsewhere, target_is_directory=True)
    else:
        dead_lease(job)
        (job / "namespaces").symlink_to(elsewhere / "namespaces", target_is_directory=True)
    for mode in ("refuse", "replace", "resume"):
        with pytest.raises(UsageError, match="symbolic link"):
            plan_output(config(tmp_path / "out"), mode)
    assert (elsewhere / "namespaces/acme.jsonl").read_text() == "keep me"


def test_the_root_and_the_home_directory_are_refused(tmp_path, monkeypatch):
    for root in ("/", "/.", "//"):
        with pytest.raises(UsageError, match="root of the file system"):
            plan_output(config(root))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(UsageError, match="home directory"):
        plan_output(config(home))
    with pytest.raises(UsageError, match="home directory"):
        plan_output(config(str(home) + "/./"))
    plan_output(config(home / "mapper-output"))  # a directory of its own: fine


def test_a_non_empty_directory_with_no_output_of_ours_needs_the_users_word(tmp_path):
    src = tmp_path / "project"
    write(src / "main.py", "print()")
    with pytest.raises(UsageError, match="not empty and holds no earlier output of this tool "
                                         r"\(e.g. main.py\).*--allow_nonempty_output=true"):
        plan_output(config(src))
    take_output(plan_output(config(src), allow_nonempty=True))
    assert (src / "export_keys/.lease.json").exists() and (src / "main.py").exists()
    # a directory holding another job's output of ours is fine
    other = tmp_path / "outputs"
    write(other / "count_keys/summary.json", json.dumps({"run_id": "r", "status": "succeeded"}))
    take_output(plan_output(config(other)))


# --- The lease is taken atomically (issue 22) ------------------------------------------------


def test_of_two_runs_planned_at_once_only_one_takes_the_output(tmp_path):
    out = tmp_path / "out"
    first, second = plan_output(config(out)), plan_output(config(out))
    take_output(first)
    with pytest.raises(lease.LeaseTaken, match="while this run was being launched"):
        take_output(second)
    held = json.loads((out / "export_keys/.lease.json").read_text())
    assert held["run_id"] == first.run.output.run_id


def test_of_two_runs_taking_over_one_dead_run_only_one_proceeds(tmp_path):
    out = tmp_path / "out"
    job = out / "export_keys"
    dead_lease(job)
    write(job / ".shards-r0/acme-00000-of-00001")
    first, second = plan_output(config(out)), plan_output(config(out))
    take_output(first)
    with pytest.raises(lease.LeaseTaken):
        take_output(second)
    assert json.loads((job / ".lease.json").read_text())["run_id"] == first.run.output.run_id


def _race(out: str, barrier, results) -> None:
    run = config(out)
    plan = plan_output(run)
    barrier.wait()
    try:
        take_output(plan)
        results.put("took")
    except lease.LeaseTaken:
        results.put("refused")


def test_processes_started_at_the_same_instant_exactly_one_takes_the_output(tmp_path):
    """Eight processes plan, wait at a barrier, then take: one proceeds, seven are refused
    (7 of 8 tries went ahead together before the lease was a compare-and-swap)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for attempt in range(3):
        out = str(tmp_path / f"out{attempt}")
        barrier, results = ctx.Barrier(8), ctx.Queue()
        procs = [ctx.Process(target=_race, args=(out, barrier, results)) for _ in range(8)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
        said = sorted(results.get(timeout=10) for _ in procs)
        assert said == ["refused"] * 7 + ["took"], said
        json.loads((tmp_path / f"out{attempt}/export_keys/.lease.json").read_text())  # whole


def test_a_dead_letter_file_of_the_users_own_is_never_replaced(tmp_path):
    """--dead_letter outside OUTPUT/JOB: a file already there may be anyone's, so the launch
    is refused, naming it, and the file is left as it was (with --output or without)."""
    mine = tmp_path / "notes" / "mine.jsonl"
    write(mine, "my own notes\n")
    for run in (config(tmp_path / "out", "--dead_letter", str(mine)),
                run_config("export_keys", "--discard_records", "--dead_letter", str(mine),
                           host="127.0.0.1:9")):
        with pytest.raises(UsageError, match="mine.jsonl already exists: a run would replace it"):
            plan_output(run)
    assert mine.read_text(encoding="utf-8") == "my own notes\n"
    assert not (tmp_path / "out").exists()
    # A file not there yet is the run's to write; inside OUTPUT/JOB the ownership rules decide.
    assert plan_output(config(tmp_path / "out", "--dead_letter", str(tmp_path / "new.jsonl")))
    inside = tmp_path / "out2" / "export_keys" / "letters.jsonl"
    with pytest.raises(UsageError, match="letters.jsonl"):  # a stranger's file there: refused
        write(inside)
        plan_output(config(tmp_path / "out2", "--dead_letter", str(inside)))
