"""The run report's HTML (the browser test, tests/emulator/test_report_browser.py, renders
it), the timeline it charts, and where a run without --output keeps it."""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import stat

from pipeline.core.summary import timeline
from pipeline.core.totals import add_to_timeline
from pipeline.graph.summary import file_sizes, report_view
from pipeline.launch.resolve import command_line
from pipeline.launch.launcher import cache_home, results_dir
from pipeline.sinks.report.context import FILES_SHOWN, grouped, size_text
from pipeline.sinks.report.html import (
    balance,
    chart_data,
    chart_js,
    charted,
    counter_chart,
    render_report,
)

T0 = dt.datetime(2026, 11, 27, 12, tzinfo=dt.timezone.utc)


def _ns(entities, ranges):
    per = {f"x#{i}": entities // ranges for i in range(ranges)}
    return {"entities": entities, "records": 0, "ranges": ranges, "slices": ranges,
            "queries": ranges, "retries": 0, "errors": 0, "read_seconds": 1.5,
            "counters": {"keys": entities}, "workers": 1, "range_entities": per,
            "range_seconds": {k: 0.5 for k in per}, "range_slices": {k: 1 for k in per}}


def _summary(namespaces):
    total = sum(n["entities"] for n in namespaces.values())
    return {"job": "count_keys", "query": "kind Item (keys only)", "status": "succeeded",
            "seconds": 2.0, "entities_per_second": total / 2, "started": T0.isoformat(),
            "finished": T0.isoformat(), "totals": {**_ns(total, 2), "counters": {"keys": total}},
            "namespaces": namespaces, "timeline": {"bucket_seconds": 1, "points": [[0, 5]]}}


def test_report_is_self_contained_and_escapes_names():
    html = render_report(_summary({"</script><b>x": _ns(10, 2), "acme": _ns(30, 3)}))
    assert "<script src" not in html and "http://" not in html.split("<script>", 1)[0]
    assert chart_js()[:200] in html  # the chart library inlined
    assert "</script><b>x" not in html and "&lt;/script&gt;&lt;b&gt;x" in html
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html,
                     re.S).group(1)
    parsed = json.loads(data)
    assert [n["name"] for n in parsed["namespaces"]] == ["</script><b>x", "acme"]
    assert parsed["namespaces"][1]["ranges"][0] == ["x#0", 10, 0.5, 1]
    assert "1 range" not in html and "3 ranges" in html


def test_only_the_largest_namespaces_get_a_chart():
    nss = {f"t{i:03d}": _ns(i + 1, 1) for i in range(60)}
    assert charted(nss, 3) == ["t057", "t058", "t059"]
    html = render_report(_summary(nss))
    assert html.count('class="ns-card"') == 50 and "The 10 smaller namespaces" in html


def test_balance():
    assert balance({"a#0": 10, "a#1": 30}) == 1.5 and balance({}) is None


def test_timeline_spreads_slices_over_their_seconds_and_widens_long_runs():
    tl: dict = {}
    t = T0.timestamp()
    add_to_timeline(tl, t + 0.5, t + 2.5, 400)
    assert tl == {int(t): 100, int(t) + 1: 200, int(t) + 2: 100}
    # a point is a bucket's end: the first second's 100 entities were read by 1 s
    assert timeline(tl, T0) == {"bucket_seconds": 1, "points": [[1, 100], [2, 200], [3, 100]]}
    long = {int(t) + s: 10 for s in range(0, 3000)}
    out = timeline(long, T0)
    assert out["bucket_seconds"] == 10 and len(out["points"]) <= 300
    assert sum(p[1] for p in out["points"]) * 10 == 30000


def test_runs_without_output_keep_summary_and_report_under_the_cache_dir(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert cache_home(env) == str(tmp_path / "cache")
    assert cache_home({"XDG_CACHE_HOME": "relative"}).endswith(os.path.join("", ".cache"))
    path = results_dir("count_keys", T0, "abc123", env)
    assert path == str(tmp_path / "cache" / "datastore-mapper" / "runs" /
                       "20261127T120000Z-count_keys-abc123")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700


def _writing(summary, mode, per_ns, undo=None):
    """A summary of a job that writes: per namespace its writes.* counters."""
    counts = {c: 0 for c in ("put", "changed", "deleted", "unchanged", "gone", "conflicts",
                             "failed", "outside_namespaces", "changed_since")}
    for ns, c in per_ns.items():
        summary["namespaces"][ns]["counters"].update({f"writes.{k}": v for k, v in c.items()})
        for k, v in c.items():
            counts[k] += v
    summary["writes"] = {"mode": mode, "counts": counts, "undo_log": undo, "changes": None,
                         "apply": "python -m pipeline --job j --writes=transactional"
                         if mode == "dry_run" else None,
                         "restore": f"restore from={undo}" if undo else None}
    return summary


def test_the_writes_of_a_writing_job_are_shown_dry_or_real():
    per_ns = {"acme": {"changed": 25, "unchanged": 5}, "b": {"put": 2, "deleted": 7,
                                                             "failed": 1}}
    dry = render_report(_writing(_summary({"acme": _ns(30, 3), "b": _ns(10, 2)}), "dry_run",
                                 per_ns))
    assert 'data-mode="dry_run"' in dry and "nothing was written to Datastore" in dry
    assert "34 would have been" in dry and "--writes=transactional" in dry
    assert '<span class="write-changed">25</span>' in dry
    assert '<span class="write-deleted">7</span>' in dry
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', dry, re.S).group(1))
    assert data["writes"] == {"dry_run": True, "series": ["put", "changed", "deleted", "failed"],
                              "namespaces": [["acme", 0, 25, 0, 0], ["b", 2, 0, 7, 1]]}
    assert '<canvas id="writes">' in dry
    real = render_report(_writing(_summary({"acme": _ns(30, 3), "b": _ns(10, 2)}),
                                  "transactional", per_ns, undo="/o/j/runs/r/undo"))
    assert "Written to Datastore (transactional)" in real and "dry run" not in real
    assert "/o/j/runs/r/undo" in real and "restore from=/o/j/runs/r/undo" in real
    assert json.loads(re.search(r'id="report-data">(.*?)</script>', real,
                                re.S).group(1))["writes"]["dry_run"] is False
    plain = render_report(_summary({"acme": _ns(30, 3)}))
    assert "the job writes nothing" in plain and '<canvas id="writes">' not in plain
    assert "<h2>Writes</h2>" not in plain


def test_the_timeline_runs_to_the_end_of_the_run_from_a_launch_between_two_seconds():
    """Measured on a real run (4.05 s, launched 0.72 s into a second, the last entity read by
    3.72 s): the curve's points were at each bucket's start, cut on the epoch's seconds
    floored against the launch, and stopped at the last read, so its last x was 2."""
    started = T0 + dt.timedelta(seconds=0.28)  # 0.72 s before the next whole second
    t = int(T0.timestamp())
    per_second = {t + 1: 60, t + 2: 1588, t + 3: 3517}
    out = timeline(per_second, started, 4.05)
    assert out == {"bucket_seconds": 1, "points": [[0.72, 0], [1.72, 60], [2.72, 1588],
                                                   [3.72, 3517], [4.05, 0]]}
    # A long run: wider buckets, the last cut at the run's end, nothing lost.
    long = {t + s: 10 for s in range(0, 3000)}
    out = timeline(long, started, 3100.5)
    xs = [p[0] for p in out["points"]]
    assert out["bucket_seconds"] == 11 and xs[-1] == 3100.5 and len(xs) <= 300
    assert xs == sorted(xs) and xs[0] == 10.72
    assert round(sum(p[1] for p in out["points"]) * 11) == 30000
    # Nothing read: a flat line over the run still.
    assert timeline({}, started, 2.5)["points"] == [[0.72, 0], [1.72, 0], [2.5, 0]]


def _data(html: str) -> dict:
    return json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1))


HOSTILE = '</script><img src=x onerror=alert(1)>&"\''


def _about(summary: dict) -> dict:
    summary.update(
        params={"kind": "Item", "from": "category", "to": HOSTILE},
        target={"project": "demo-<p>", "database": None, "emulator_host": "localhost:8081",
                "namespaces": ["__default__", HOSTILE]},
        command_line="python -m pipeline --job rename_property --params " + HOSTILE,
        versions={"datastore-mapper": "0.1.0", "apache-beam": "2.99.0", "python": "3.11.2"},
        files=["namespaces/acme.jsonl", HOSTILE + ".jsonl", "summary.json", "report.html"],
        file_bytes={"namespaces/acme.jsonl": 2048, HOSTILE + ".jsonl": 10,
                    "summary.json": 900})
    return summary


def test_the_report_says_what_ran_where_how_and_what_it_wrote_escaping_the_data():
    html = render_report(_about(_summary({"acme": _ns(30, 3)})))
    about = html[html.index('<h2 id="about">'):html.index("<h2>Entities read per second")]
    # parameters: a rename says from -> to
    assert ('<td class="param-name">from</td><td class="param-value"><code>category</code>'
            in about)
    assert '<td class="param-name">to</td>' in about
    # the target
    assert '<code id="target-project">demo-&lt;p&gt;</code>' in about
    assert "(default)" in about and '<code id="target-emulator">localhost:8081</code>' in about
    assert "<code>__default__</code>" in about
    # the command line and versions
    assert '<pre id="command-line"><code>python -m pipeline --job rename_property' in about
    assert '<code class="version" data-package="apache-beam">2.99.0</code>' in about
    assert 'data-package="python">3.11.2<' in about
    # the files, their sizes, the report itself "this file"
    assert "2.0 KB" in about and "900 B" in about and "this file" in about
    assert '<td class="file-size" data-bytes="2048">' in about
    # hostile text from the data (params, namespaces, command line, file names) is escaped
    # everywhere it is shown: it never appears raw
    assert "<img" not in html
    escaped = "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;&amp;&quot;&#x27;"
    assert about.count(escaped) == 4, about
    assert HOSTILE not in html


def test_a_summary_without_the_new_fields_still_renders():
    """Summaries written before the report showed them (a resumed output's older runs)."""
    html = render_report(_summary({"acme": _ns(30, 3)}))
    assert "no parameters" in html and "— (not recorded)" in html
    assert "not launched from the command line" in html and "no files" in html


def test_sizes():
    assert [size_text(n) for n in (None, 0, 1023, 1024, 5 * 1024 ** 2 + 1, 3 * 1024 ** 4)] == [
        "—", "0 B", "1,023 B", "1.0 KB", "5.0 MB", "3,072.0 GB"]


def test_the_file_sizes_are_those_of_the_files_on_disk(tmp_path):
    job = tmp_path / "out" / "count_keys"
    (job / "namespaces").mkdir(parents=True)
    (job / "namespaces" / "acme.jsonl").write_bytes(b"x" * 1234)
    (job / "foreign.txt").write_bytes(b"y")
    (job / "runs" / "r1" / "undo").mkdir(parents=True)
    (job / "runs" / "r1" / "undo" / "acme.jsonl").write_bytes(b"z" * 99)
    (job / "runs" / "r0").mkdir()
    (job / "runs" / "r0" / "summary.json").write_bytes(b"{}")  # an earlier run's
    sizes = file_sizes(str(tmp_path / "out"), "count_keys",
                       ["namespaces/acme.jsonl", "summary.json"], "r1")
    # summary.json is not written yet; the run's own directory (its undo log) is listed
    assert sizes == {"namespaces/acme.jsonl": 1234, "runs/r1/undo/acme.jsonl": 99}
    view = report_view({"files": ["namespaces/acme.jsonl"], "file_bytes": sizes},
                       "runs/r1/summary.json", 321, "runs/r1/report.html")
    assert view["files"] == ["namespaces/acme.jsonl", "runs/r1/undo/acme.jsonl",
                             "runs/r1/summary.json", "runs/r1/report.html"]
    assert view["file_bytes"]["runs/r1/summary.json"] == 321
    html = render_report({**_summary({"acme": _ns(30, 3)}), **view})
    assert html.count('<td class="file-name">') == 4 and "this file" in html


def test_the_command_line_is_shown_as_run_with_its_secrets_redacted():
    argv = ["--job", "rename_property", "--params", "from=a b,to=c",
            "--params=client_secret=GOCSPX-s3cret,x=1",
            '--extra={"refresh_token": "1//0gSECRET"}', "ya29.a0AfB_TOKENvalue"]
    line = command_line(argv, program="/venv/bin/datastore-mapper")
    assert line.startswith("datastore-mapper --job rename_property --params 'from=a b,to=c' ")
    assert "s3cret" not in line and "SECRET" not in line and "TOKENvalue" not in line
    assert line.count("[REDACTED]") == 3
    assert command_line(["--job", "j"], program="/x/pipeline/__main__.py") == (
        "python -m pipeline --job j")


def test_the_counters_chart_stacks_the_largest_namespaces_and_sums_the_rest():
    nss = {f"t{i}": _ns(10 + i, 1) for i in range(10)}
    for i, n in enumerate(nss.values()):
        n["counters"] = {"keys": 10 + i, "odd": i % 2}
    s = _summary(nss)
    s["totals"]["counters"] = {"keys": sum(10 + i for i in range(10)), "odd": 5, "zero": 0}
    c = counter_chart(s)
    assert c["names"] == ["keys", "odd", "zero"]
    assert [row[0] for row in c["series"]] == [f"t{i}" for i in range(2, 10)] + [
        "other namespaces"]
    assert c["series"][-1] == ["other namespaces", [10 + 11, 1, 0]]
    assert c["series"][0] == ["t2", [12, 0, 0]]
    html = render_report(s)
    assert '<canvas id="counters">' in html and _data(html)["counters"] == c
    one = _summary({"acme": _ns(30, 3)})
    assert counter_chart(one) == {"names": ["keys"], "series": [["all namespaces", [30]]]}
    one["totals"]["counters"] = {}
    assert counter_chart(one) is None and '<canvas id="counters">' not in render_report(one)


def test_the_range_charts_share_one_scale_so_one_range_is_not_shown_full():
    s = _summary({"big": _ns(900, 3), "one": _ns(12, 1)})
    s["namespaces"]["big"]["range_seconds"]["x#1"] = 4.0
    data = chart_data(s)
    assert data["scale"] == {"entities": 300, "seconds": 4.0}
    html = render_report(s)
    assert "the run's largest range (300 entities, 4.0 s)" in " ".join(html.split())
    assert "max: data.scale.entities" in html and "max: data.scale.seconds" in html
    # the run's largest range, even in a namespace too small to get a chart of its own
    many = {f"t{i:03d}": _ns(100 + i, 1) for i in range(60)}
    many["t000"]["range_seconds"]["x#0"] = 9.0
    assert "t000" not in charted(many)
    assert chart_data(_summary(many))["scale"] == {"entities": 159, "seconds": 9.0}


def test_many_files_are_shown_by_directory_each_still_listed():
    undo = [f"runs/r1/undo/part-{i:03d}.jsonl" for i in range(40)]
    files = ["namespaces/a.jsonl", *undo, "runs/r1/summary.json", "runs/r1/report.html"]
    sizes = {n: 100 for n in files[:-1]}
    assert grouped(files, sizes) == [["namespaces/a.jsonl", 1, 100],
                                     ["runs/r1/undo/", 40, 4000],
                                     ["runs/r1/summary.json", 1, 100],
                                     ["runs/r1/report.html", 1, None]]
    html = render_report({**_summary({"acme": _ns(30, 3)}), "files": files,
                          "file_bytes": sizes})
    short = html[html.index('<table class="files-grouped">'):html.index("<details>")]
    assert "<code>runs/r1/undo/</code> (40 files)</td><td>3.9 KB</td>" in short
    assert short.count("<tr>") == 1 + 4 + 1  # head, rows, foot
    every = html[html.index("<details>"):html.index("</details>")]
    assert "every file (43)" in every and every.count('<td class="file-name">') == 43
    few = render_report({**_summary({"acme": _ns(30, 3)}), "files": files[:FILES_SHOWN],
                         "file_bytes": sizes})
    assert "<details>" not in few and "files-grouped" not in few
