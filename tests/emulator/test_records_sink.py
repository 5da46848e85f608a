"""No silent drops: a job's records go to a sink, or are discarded on purpose, or the run
says why it cannot go on."""
from __future__ import annotations

import pytest

from devtools.seed import NamespaceSpec, seed_dataset
from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS, run_mapper

TEST_JOBS = ["--job_module", "tests.support.jobs_for_tests"]


@pytest.fixture
def seeded(emulator):
    return seed_dataset(TEST_PROJECT, [NamespaceSpec("", 40), NamespaceSpec("acme", 25)])


def test_a_job_that_declares_records_is_refused_without_a_sink(seeded):
    r = run_mapper("export_keys")
    assert r.code == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "--discard_records" in errors[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("runner", [IN_PROCESS], ids=["in-process"])
def test_discard_records_runs_it_and_counts_them(seeded, runner):
    r = run_mapper("export_keys", ["--discard_records"], runner=runner)
    assert r.code == 0, r.stderr
    assert "records output: 65" in r.stdout, r.stdout


def test_discard_records_with_output_writes_the_summary_but_no_record_file(seeded, tmp_path):
    r = run_mapper("export_keys", ["--discard_records"], output=str(tmp_path / "out"))
    assert r.code == 0, r.stderr
    assert r.summary["totals"]["records"] == 65 and r.records == []
    assert not (tmp_path / "out" / "export_keys" / "namespaces").exists()


def test_a_counting_job_needs_no_sink(seeded):
    r = run_mapper("count_keys")
    assert r.code == 0, r.stderr
    assert "65 entities in 2 namespaces" in r.stdout


def test_an_undeclared_record_without_a_sink_fails_the_run(seeded):
    """csv_keys yields records without declaring them: with no sink it stops at the first."""
    r = run_mapper("csv_keys", TEST_JOBS)
    assert r.code == 1, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr
    assert "does not declare yields_records = True" in errors[0]
    assert "--discard_records" in errors[0] and "Traceback" not in r.stderr
