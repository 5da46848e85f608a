"""The run report in a real headless Chromium: a run's report.html renders with no script
error and shows each namespace's numbers from its summary; a broken report is caught."""
from __future__ import annotations

import json
import os
from importlib import metadata

import apache_beam
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
    # So are a curve cut short, another Beam version, a file's size that differs.
    cut = dict(summary, seconds=summary["seconds"] + 5 * summary["timeline"]["bucket_seconds"])
    assert any("curve ends at" in p for p in report_problems(chromium, str(path), cut))
    beam = summary["versions"]["apache-beam"]
    other = tmp_path / "other.html"
    other.write_text(text.replace(f'data-package="apache-beam">{beam}<',
                                  'data-package="apache-beam">0.0.1<'), encoding="utf-8")
    assert any("versions shown" in p for p in report_problems(chromium, str(other), summary))
    name, size = next(iter(summary["file_bytes"].items()))
    assert f'data-bytes="{size}"' in text
    sized = tmp_path / "sized.html"
    sized.write_text(text.replace(f'data-bytes="{size}"', f'data-bytes="{size + 1}"', 1),
                     encoding="utf-8")
    assert any("files shown" in p for p in report_problems(chromium, str(sized), summary))


def test_the_report_says_what_ran_where_and_what_it_wrote(report):
    """The summary the report is made from records the run's context: the target, the
    command line as run, the versions, every file with its size (summary.json and the report,
    written after it, aside)."""
    path, summary = report
    assert summary["target"] == {"project": TEST_PROJECT, "database": None,
                                 "emulator_host": os.environ["DATASTORE_EMULATOR_HOST"],
                                 "namespaces": None}
    assert summary["command_line"].startswith("python -m pipeline --job count_by_property ")
    assert "--slice_entities 60" in summary["command_line"]
    assert summary["versions"]["apache-beam"] == apache_beam.__version__
    assert summary["versions"]["datastore-mapper"] == metadata.version("datastore-mapper")
    assert set(summary["file_bytes"]) == set(summary["files"]) - {"summary.json", "report.html"}
    assert summary["file_bytes"] == {
        name: os.path.getsize(path.parent / name) for name in summary["file_bytes"]}


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
    assert summary["params"] == {"kind": "Item", "from": "category", "to": "genre"}
    own = f"runs/{run.name}/"
    if writes == "transactional":  # the undo log is listed with its size
        undo = [n for n in summary["file_bytes"] if n.startswith(own + "undo/")]
        assert undo and all(summary["file_bytes"][n] > 0 for n in undo), summary["file_bytes"]
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


HOSTILE = '</script><img src=x onerror="document.title=1">&<b>'


def _hostile_summary() -> dict:
    """A summary whose data (namespace, parameters, target, command line, file names) is
    hostile HTML."""
    per = {f"{HOSTILE}#0": 7}
    ns = {"entities": 7, "records": 0, "ranges": 1, "slices": 1, "queries": 1, "retries": 0,
          "errors": 0, "read_seconds": 0.2, "counters": {HOSTILE: 7}, "workers": 1,
          "range_entities": per, "range_seconds": {f"{HOSTILE}#0": 0.2},
          "range_slices": {f"{HOSTILE}#0": 1}}
    return {"job": "count_keys", "query": "kind Item", "status": "succeeded", "seconds": 3.5,
            "entities_per_second": 2.0, "started": "2026-12-05T07:00:00+00:00",
            "finished": "2026-12-05T07:00:03.5+00:00", "totals": dict(ns),
            "namespaces": {HOSTILE: ns},
            "timeline": {"bucket_seconds": 1, "points": [[0.5, 0], [1.5, 7], [2.5, 0],
                                                         [3.5, 0]]},
            "params": {"to": HOSTILE}, "command_line": f"python -m pipeline --params {HOSTILE}",
            "target": {"project": HOSTILE, "database": None, "emulator_host": HOSTILE,
                       "namespaces": [HOSTILE]},
            "versions": {"datastore-mapper": "0.1.0", "apache-beam": HOSTILE, "python": "3"},
            "files": [f"namespaces/{HOSTILE}.jsonl", "report.html"],
            "file_bytes": {f"namespaces/{HOSTILE}.jsonl": 12}}


def test_hostile_data_is_shown_as_text_in_a_real_browser(chromium, tmp_path):
    """Every section shows the hostile text as text: no element made of it, no script run
    (the title stays), and the checks find each value as the summary has it."""
    from pipeline.sinks.report.html import render_report

    summary = _hostile_summary()
    path = tmp_path / "report.html"
    path.write_text(render_report(summary), encoding="utf-8")
    assert report_problems(chromium, str(path), summary) == []
    d = chromium.driver
    assert d.execute_script("return document.querySelectorAll('img').length") == 0
    assert d.title == "datastore-mapper: count_keys"
    assert d.execute_script("return document.querySelector('td.param-value').innerText") == (
        HOSTILE)
