"""The run report in a real headless Chromium: a run's report.html renders with no script
error and shows each namespace's numbers from its summary; a broken report is caught."""
from __future__ import annotations

import json

import pytest

from devtools.seed import NamespaceSpec, seed_dataset
from tests.support import TEST_PROJECT
from tests.support.browser import report_problems
from tests.support.runs import IN_PROCESS, run_mapper

SPEC = [NamespaceSpec("", 400), NamespaceSpec("acme", 250), NamespaceSpec("tiny", 3),
        NamespaceSpec("a.b-c_d", 30)]


@pytest.fixture
def report(emulator, tmp_path):
    seed_dataset(TEST_PROJECT, SPEC)
    r = run_mapper("count_by_property", ["--slice_entities", "60"],
                   output=str(tmp_path / "out"), runner=IN_PROCESS)
    assert r.code == 0, r.stderr
    return tmp_path / "out" / "count_by_property" / "report.html", r.summary


def test_the_report_renders_and_shows_the_summary(chromium, report):
    path, summary = report
    assert report_problems(chromium, str(path), summary) == []


def test_a_broken_report_is_caught(chromium, report, tmp_path):
    path, summary = report
    text = path.read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"
    # The chart library cut short: a syntax error, and no chart can be drawn.
    start = text.index("<script>") + len("<script>")
    broken.write_text(text[:start] + text[start:start + 5000] + text[text.index("</script>",
                      start):], encoding="utf-8")
    problems = report_problems(chromium, str(broken), summary)
    assert any(p.startswith("console:") for p in problems), problems
    assert any("did not finish" in p for p in problems), problems
    # A number that differs from the summary is caught too.
    wrong = tmp_path / "wrong.html"
    wrong.write_text(text.replace('<span class="ns-entities">250</span>',
                                  '<span class="ns-entities">251</span>'), encoding="utf-8")
    assert any("namespaces shown" in p for p in report_problems(chromium, str(wrong), summary))


@pytest.mark.parametrize("writes", ["dry_run", "transactional"])
def test_a_writing_run_s_report_shows_its_writes(chromium, emulator, tmp_path, writes):
    seeded = seed_dataset(TEST_PROJECT, SPEC[:2])
    out = tmp_path / "out"
    r = run_mapper("rename_property", ["--job_module", "tests.support.jobs_writes", "--params",
                                       "kind=Item,from=category,to=genre",
                                       f"--writes={writes}", "--slice_entities", "100"],
                   output=str(out), runner=IN_PROCESS)
    assert r.code == 0, r.stderr
    [run] = list((out / "rename_property" / "runs").iterdir())
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    assert summary["writes"]["mode"] == writes
    assert summary["writes"]["counts"]["changed"] == sum(len(v) for v in seeded.values())
    path = run / "report.html"
    assert report_problems(chromium, str(path), summary) == []
    # A write count that differs from the summary is caught.
    text = path.read_text(encoding="utf-8")
    n = summary["writes"]["counts"]["changed"]
    wrong = tmp_path / "wrong.html"
    wrong.write_text(text.replace(f'<span class="write-changed">{n:,}</span>',
                                  f'<span class="write-changed">{n + 1:,}</span>'),
                     encoding="utf-8")
    assert any("writes shown" in p for p in report_problems(chromium, str(wrong), summary))
