"""Job-wide progress of a local run, in this process and with two worker processes: the
launcher's progress lines come from every worker, through the progress channel, while the run
goes on."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.seed import NamespaceSpec, seed_dataset
from tests.support import TEST_PROJECT

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(r"^progress: namespaces (\d+)/(\d+) planned, (\d+) done; ranges (\d+)/(\d+); "
                  r"([\d,]+)(?: of ~([\d,]+))? entities")
SPEC = [NamespaceSpec("", 900), NamespaceSpec("acme", 600), NamespaceSpec("tiny", 7)]


@pytest.fixture
def seeded(emulator):
    return seed_dataset(TEST_PROJECT, SPEC)


def _run(emulator, tmp_path, *args):
    env = {**os.environ, **emulator.env(), "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "pipeline", "--project", TEST_PROJECT, *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8",
                          timeout=300)


def _lines(stderr: str) -> list:
    return [ln for ln in stderr.splitlines() if ln.startswith("progress:")]


@pytest.mark.parametrize("runner", [[]], ids=["default-in-process"])
def test_a_run_reports_job_wide_progress_with_an_estimate(emulator, seeded, tmp_path, runner):
    r = _run(emulator, tmp_path, "--job", "slow_keys", "--job_module",
             "tests.support.jobs_failing", "--params", "sleep=0.003", "--slice_entities", "40",
             "--progress_seconds", "0.3", "--discard_records", *runner)
    assert r.returncode == 0, r.stderr
    lines = _lines(r.stderr)
    assert lines.count("progress: listing namespaces") <= 1, lines  # said once, not repeated
    lines = [ln for ln in lines if ln != "progress: listing namespaces"]
    parsed = [LINE.match(ln) for ln in lines]
    assert len(lines) >= 4 and all(parsed), lines
    entities = [int(m.group(6).replace(",", "")) for m in parsed if m]
    assert entities == sorted(entities), lines  # never goes back
    assert entities[-1] == 1507 and lines[-1].endswith(tuple(f"done in {s} s" for s in
                                                             range(1, 300))), lines[-1]
    last = parsed[-1]
    assert last.group(1, 2, 3) == ("3", "3", "3"), lines[-1]
    assert last.group(4) == last.group(5) and int(last.group(5)) >= 3, lines[-1]
    # While reading, an estimate of the total came from the sample gaps, within a factor 2.
    estimates = [int(m.group(7).replace(",", "")) for m in parsed if m and m.group(7)]
    assert estimates, lines
    assert all(1507 / 2 <= e <= 1507 * 2 for e in estimates), lines
    # No worker's own "read by this worker" lines: the launcher speaks for the job.
    assert "read by this worker" not in r.stderr
    # The summary is printed once, by the CLI: the summary step's record of it stays in the
    # workers' log, also when the run is in this process.
    assert "summary:\n" not in r.stderr and r.stdout.count("job slow_keys:") == 1, r.stdout


def test_progress_seconds_0_prints_no_progress(emulator, seeded, tmp_path):
    r = _run(emulator, tmp_path, "--job", "count_keys", "--progress_seconds", "0")
    assert r.returncode == 0, r.stderr
    assert _lines(r.stderr) == [] and "1507 entities in 3 namespaces" in r.stdout


@pytest.mark.parametrize("writes", ["dry_run", "transactional"])
def test_a_writing_job_s_progress_shows_its_writes(emulator, seeded, tmp_path, writes):
    out = tmp_path / "out"
    r = _run(emulator, tmp_path, "--job", "rename_property", "--job_module",
             "tests.support.jobs_writes", "--params", "kind=Item,from=category,to=genre",
             f"--writes={writes}", "--slice_entities", "100", "--progress_seconds", "0.3",
             "--output", str(out))
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in _lines(r.stderr) if ln != "progress: listing namespaces"]
    assert lines and all(LINE.match(ln) for ln in lines), lines
    total = sum(len(v) for v in seeded.values())
    head = "dry run, would write" if writes == "dry_run" else "writes (transactional)"
    assert re.search(re.escape(f"; {head} {total:,} (changed {total:,})") + r"(, [\d,]+/s)?; "
                     r"done in ", lines[-1]), lines[-1]
    shown = [int(m.group(1).replace(",", "")) for m in
             (re.search(re.escape(head) + r" ([\d,]+)", ln) for ln in lines) if m]
    assert len(shown) == len(lines) and shown == sorted(shown), lines  # said on every line


def test_the_progress_counters_of_a_real_run_make_the_wait_lines(emulator, seeded):
    """What --wait reads on Dataflow, read from a real run's result (the in-process
    FnApiRunner's): the progress counters and the job's, folded into the final line."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from pipeline.graph.build import build
    from pipeline.launch.progress import RemoteWait
    from tests.support.configs import run_config
    from tests.support.runs import IN_PROCESS

    run = run_config("count_keys", "--slice_entities", "200", host=emulator.host)
    p = beam.Pipeline(options=PipelineOptions(IN_PROCESS))
    build(p, run)
    result = p.run()
    result.wait_until_finish()
    lines: list = []
    assert RemoteWait(result, run.job.metrics_namespace, lines.append).run() == "DONE"
    m = LINE.match(lines[-1])
    assert m, lines
    assert m.group(1, 2, 3) == ("3", "3", "3") and m.group(4) == m.group(5), lines[-1]
    assert int(m.group(5)) >= 3 and m.group(6) == "1,507", lines[-1]
    assert "done in" in lines[-1]
