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
from pipeline.launch.rundir import cache_home, results_dir
from pipeline.sinks.report.html import balance, chart_js, charted, render_report

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
