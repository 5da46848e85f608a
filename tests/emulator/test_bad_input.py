"""Bad input stops the run with a clear message, a non-zero exit code and no traceback.

Each case runs the real CLI (``python -m pipeline``) in a subprocess, except the
missing-index case: the emulator never asks for composite indexes, so that one
runs in-process with the client's error injected.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.api_core import exceptions as gexc
from google.cloud import datastore

from devtools.seed import NamespaceSpec, seed_dataset
from pipeline.core.keyorder import format_path, path_from_flat
from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS, run_mapper

ROOT = Path(__file__).resolve().parents[2]
JOB_MODULE = ["--job_module", "tests.support.jobs_failing"]
#: Nothing listens here: a case that should fail before touching Datastore fails fast if it does.
NO_DATASTORE = {"DATASTORE_EMULATOR_HOST": "127.0.0.1:9"}


def cli(args, env_extra, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=timeout)


def assert_clean_failure(r: subprocess.CompletedProcess, *expected: str) -> str:
    """Non-zero exit, no traceback anywhere, and every expected fragment in stderr."""
    detail = f"exit {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
    assert r.returncode != 0, detail
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, detail
    for fragment in expected:
        assert fragment in r.stderr, f"{fragment!r} not in stderr\n{detail}"
    return r.stderr


@pytest.fixture
def seeded(emulator):
    """A little data in two namespaces: {namespace: [flat key paths]}."""
    return seed_dataset(TEST_PROJECT, [NamespaceSpec("", 30), NamespaceSpec("acme", 20)])


# --- failures before anything is read -----------------------------------------------------


def test_unknown_job_lists_registered_jobs():
    r = cli(["--job", "no_such_job", "--project", TEST_PROJECT], NO_DATASTORE)
    err = assert_clean_failure(r, "unknown job 'no_such_job'", "registered jobs:")
    for job in ("count_keys", "count_by_property", "created_between", "export_keys"):
        assert job in err


@pytest.mark.parametrize("args, expected", [
    (["--shards", "0"], ["--shards", "use a number from 1 to 10 000"]),
    (["--shards", "abc"], ["--shards", "'abc' is not a whole number"]),
    (["--slice_seconds", "-1"], ["--slice_seconds", "above 0"]),
    (["--read_time", "yesterday"], ["--read_time", "'yesterday' is not an RFC 3339 time"]),
    (["--allow_empty_kind=maybe"], ["--allow_empty_kind", "'maybe' is not a boolean"]),
    (["--params", "novalue"], ["--params", "'novalue' is not NAME=VALUE"]),
], ids=["shards-0", "shards-abc", "slice_seconds-negative", "read_time-yesterday",
        "allow_empty_kind-maybe", "params-novalue"])
def test_bad_option_value_is_an_argparse_error(args, expected):
    r = cli(["--job", "count_keys", "--project", TEST_PROJECT, *args], NO_DATASTORE)
    assert_clean_failure(r, *expected)
    assert r.returncode == 2, r.stderr


def test_unknown_job_parameter_names_accepted_parameters():
    r = cli(["--job", "count_keys", "--project", TEST_PROJECT, "--params", "colour=red"],
            NO_DATASTORE)
    assert_clean_failure(r, "job count_keys has no parameter 'colour'", "it accepts:", "kind",
                         "by_parent")


def test_missing_project():
    env = {**NO_DATASTORE, "GOOGLE_CLOUD_PROJECT": "", "DATASTORE_PROJECT_ID": ""}
    r = cli(["--job", "count_keys"], env)
    assert_clean_failure(r, "--project is required")


def test_inequalities_on_two_properties_name_both():
    r = cli(["--job", "two_inequalities", *JOB_MODULE, "--project", TEST_PROJECT], NO_DATASTORE)
    err = assert_clean_failure(r, "inequality filters on more than one property")
    assert "n, score" in err


# --- failures found by the launch checks ----------------------------------------------------


def test_unknown_namespace_lists_existing(emulator, seeded):
    r = cli(["--job", "count_keys", "--project", TEST_PROJECT, "--namespaces", "nosuch"],
            emulator.env())
    assert_clean_failure(r, "namespace(s) not found: nosuch",
                         "namespaces with entities: __default__, acme")


def test_kind_without_entities_lists_kinds(emulator, seeded):
    r = cli(["--job", "count_keys", "--project", TEST_PROJECT, "--params", "kind=Nope"],
            emulator.env())
    assert_clean_failure(r, "kind 'Nope' has no entities", "kinds found: Item, Parent",
                         "--allow_empty_kind=true")


def test_kind_without_entities_runs_when_allowed(emulator, seeded, tmp_path):
    r = cli(["--job", "count_keys", "--project", TEST_PROJECT, "--params", "kind=Nope",
             "--allow_empty_kind=true", "--output", str(tmp_path), *IN_PROCESS], emulator.env())
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    with open(tmp_path / "count_keys" / "summary.json", encoding="utf-8") as f:
        summary = json.load(f)
    assert summary["totals"]["entities"] == 0
    assert set(summary["namespaces"]) == {"__default__", "acme"}


def test_missing_composite_index_prints_index_yaml(emulator, seeded, monkeypatch):
    """Production refuses an equality + range query without a composite index; the
    emulator never does, so the launch probe's query gets the client's error injected."""
    real_fetch = datastore.Query.fetch
    probed = []

    def fetch(q, **kw):
        if q.filters:  # the probe of the read query (the kind check has no filters)
            probed.append(q)
            raise gexc.FailedPrecondition(
                "no matching index found. recommended index is:\n- kind: Item\n  properties:\n"
                "  - name: category\n  - name: created\n")
        return real_fetch(q, **kw)

    monkeypatch.setattr(datastore.Query, "fetch", fetch)
    r = run_mapper("category_created_between", JOB_MODULE)
    assert probed, "the launch probe did not run"
    assert r.code != 0
    assert "Traceback" not in r.stderr
    assert "needs a composite index" in r.stderr, r.stderr
    assert ("indexes:\n- kind: Item\n  properties:\n  - name: category\n  - name: created\n"
            in r.stderr), r.stderr
    assert "gcloud datastore indexes create index.yaml" in r.stderr


# --- a failure inside the job, on a worker ----------------------------------------------------


@pytest.mark.parametrize("runner", [
    [],  # the CLI's default: FnApiRunner with two worker processes
    ["--runner=FnApiRunner", "--direct_running_mode=in_memory"],
], ids=["two-workers", "in-memory"])
def test_job_failing_on_one_entity_names_job_key_and_namespace(emulator, seeded, runner):
    named = [flat for flat in seeded["acme"] if len(flat) == 2 and isinstance(flat[1], str)]
    bad = named[len(named) // 2]
    r = cli(["--job", "fail_on_entity", *JOB_MODULE, "--project", TEST_PROJECT,
             "--params", f"fail_on={bad[1]}", *runner], emulator.env())
    expected = ["job fail_on_entity failed on entity", format_path(path_from_flat(bad)),
                "in namespace acme", f"ValueError: cannot handle {bad[1]!r}"]
    assert_clean_failure(r, *expected)
