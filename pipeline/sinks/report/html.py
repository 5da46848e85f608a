"""The run report: one self-contained HTML file (``OUTPUT/JOB/report.html``) made from the
summary, that opens offline: its chart code is inlined.

What it shows: the run's figures (entities, records, ranges, slices, queries, retries, dead
letters, writes); what a reader needs to trust and repeat it (parameters, target, command
line, versions, the files written with their sizes: ``context``); entities/s over time, from
the start to the end of the run; the job's counters as bars (per namespace, stacked); and per
namespace (per kind too, when the job reads several) its ranges as bars of entities and
seconds, so balance and stragglers show at a glance, with the slices of each range. The range
charts share one scale (the largest range of the run), so a namespace of one small range is
not drawn as full as the largest.

Charts are drawn by Chart.js (MIT; ``assets/chart.umd.min.js``, 4.6.1, about 210 KB, inlined):
a single file with no dependencies, canvas-drawn so thousands of bars stay fast, and kept up
by an active project. Pure: the summary step writes the text this returns.
"""
from __future__ import annotations

import html
import json
from importlib import resources
from typing import Optional

from pipeline.sinks.report.context import about_section

#: Namespaces that get a chart of their ranges (the largest by entities); the rest are rows
#: of the table only.
CHARTED_NAMESPACES = 50
CHART_JS = "chart.umd.min.js"


def chart_js() -> str:
    return resources.files(__package__).joinpath("assets", CHART_JS).read_text("utf-8")


def _e(v) -> str:
    return html.escape(str(v), quote=True)


def _num(v) -> str:
    if isinstance(v, float):
        return f"{v:,.1f}"
    return f"{v:,}" if isinstance(v, int) else _e(v)


def _count(n: int, one: str, many: str = "") -> str:
    return f"{_num(n)} {one if n == 1 else (many or one + 's')}"


def balance(range_entities: dict) -> Optional[float]:
    """The largest range over the mean of the ranges (1.0: perfectly even)."""
    values = list(range_entities.values())
    if not values or not sum(values):
        return None
    return max(values) / (sum(values) / len(values))


def charted(namespaces: dict, limit: int = CHARTED_NAMESPACES) -> list:
    """The namespaces that get a chart: the largest ``limit`` by entities, in name order."""
    largest = sorted(namespaces, key=lambda ns: (-namespaces[ns]["entities"], ns))[:limit]
    return sorted(largest)


def range_rows(n: dict) -> list:
    """[range id, entities, seconds, slices] of a namespace's ranges, in range order."""
    seconds, slices = n.get("range_seconds", {}), n.get("range_slices", {})
    return [[rid, ents, seconds.get(rid, 0.0), slices.get(rid, 0)]
            for rid, ents in n.get("range_entities", {}).items()]


#: The write counts of a namespace's chart and table, in order (``writes.NAME`` counters).
WRITE_COUNTS = ("put", "changed", "deleted", "unchanged", "gone", "conflicts", "failed",
                "outside_namespaces", "changed_since")
#: Those drawn as bars (the others are in the tables).
WRITE_BARS = ("put", "changed", "deleted", "failed")


def write_rows(namespaces: dict) -> list:
    """[namespace, then each of WRITE_COUNTS] per namespace, from its ``writes.*``
    counters."""
    return [[ns] + [n.get("counters", {}).get(f"writes.{c}", 0) for c in WRITE_COUNTS]
            for ns, n in namespaces.items()]


#: Counters drawn in the counters chart (the largest totals); every one is in the tables.
CHARTED_COUNTERS = 30
#: Namespaces with their own colour in the counters chart (the largest by entities); the
#: rest are summed as one "other namespaces" series.
COUNTER_SERIES = 8


def counter_chart(summary: dict) -> Optional[dict]:
    """The job's counters as bars: ``names`` (the CHARTED_COUNTERS largest totals) and
    ``series`` of [namespace, value per name], one per namespace (the COUNTER_SERIES
    largest, then "other namespaces"), or one "all namespaces" series when there is only one
    namespace; None when the job counted nothing."""
    totals = {k: v for k, v in summary.get("totals", {}).get("counters", {}).items()
              if isinstance(v, (int, float)) and not isinstance(v, bool)}
    names = sorted(totals, key=lambda k: (-totals[k], k))[:CHARTED_COUNTERS]
    if not names:
        return None
    namespaces = summary.get("namespaces", {})
    if len(namespaces) <= 1:
        return {"names": names, "series": [["all namespaces", [totals[k] for k in names]]]}
    shown = charted(namespaces, COUNTER_SERIES)

    def values(ns: str) -> list:
        c = namespaces[ns].get("counters", {})
        return [c.get(k, 0) for k in names]
    series = [[ns, values(ns)] for ns in shown]
    rest = [values(ns) for ns in namespaces if ns not in shown]
    if rest:
        series.append(["other namespaces", [sum(col) for col in zip(*rest)]])
    return {"names": names, "series": series}


def range_scale(namespaces: dict) -> dict:
    """One scale for every range chart: the largest range's entities and seconds over the
    run (each chart scaling itself drew a namespace's only range at full height)."""
    rows = [r for n in namespaces.values() for r in range_rows(n)]
    return {"entities": max((r[1] for r in rows), default=0),
            "seconds": max((r[2] for r in rows), default=0.0)}


def chart_data(summary: dict) -> dict:
    namespaces = summary.get("namespaces", {})
    shown = charted(namespaces)
    out = {
        "timeline": summary.get("timeline", {"bucket_seconds": 1, "points": []}),
        "namespaces": [{"name": ns, "ranges": range_rows(namespaces[ns])} for ns in shown],
        "scale": range_scale(namespaces),
        "counters": counter_chart(summary),
    }
    if summary.get("writes"):
        rows = {r[0]: r for r in write_rows(namespaces)}
        out["writes"] = {
            "dry_run": summary["writes"].get("mode") == "dry_run",
            "series": list(WRITE_BARS),
            "namespaces": [[ns] + [rows[ns][1 + WRITE_COUNTS.index(c)] for c in WRITE_BARS]
                           for ns in charted(namespaces)]}
    return out


def _table(headers: list, rows: list, cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _counters(c: dict) -> str:
    return ", ".join(f"{_e(k)}={_num(v)}" for k, v in c.items()) or "—"


def _overview(s: dict) -> str:
    t = s["totals"]
    dead = s.get("dead_letters") or {}
    rows = [
        ("status", _e(s.get("status", "—"))),
        ("query", _e(s.get("query", ""))),
        ("started", _e(s.get("started", ""))), ("finished", _e(s.get("finished", ""))),
        ("run time", f"{s.get('seconds', 0):,.1f} s"),
        ("entities", f'<span id="total-entities">{_num(t["entities"])}</span>'),
        ("entities/s", _num(s.get("entities_per_second", 0.0))),
        ("records", _num(t["records"])), ("namespaces", _num(len(s.get("namespaces", {})))),
        ("ranges", _num(t["ranges"])), ("slices", _num(t["slices"])),
        ("queries", _num(t["queries"])), ("retries", _num(t["retries"])),
        ("dead letters", _num(dead.get("count", t.get("errors", 0)))
         + (f" ({_e(dead['file'])})" if dead.get("file") else "")),
        ("writes", _writes_overview(s.get("writes"))),
        ("workers", _num(t["workers"])),
    ]
    if s.get("read_time"):
        rows.insert(2, ("read time", _e(s["read_time"])))
    if s.get("failure"):
        rows.insert(1, ("failure", _e(s["failure"])))
    return _table(["", ""], [[f"<b>{_e(k)}</b>", v] for k, v in rows], "overview")


def _writes_overview(wr: Optional[dict]) -> str:
    if not wr:
        return "— (the job writes nothing)"
    c = wr["counts"]
    n = sum(c.get(k, 0) for k in ("put", "changed", "deleted"))
    if wr.get("mode") == "dry_run":
        return f"dry run: none made, {_num(n)} would have been (see Writes below)"
    return f"{_num(n)} ({_e(wr.get('mode'))}; see Writes below)"


def _writes_section(s: dict) -> str:
    """The writes of a job that writes back: the mode, the counts in all and per namespace
    (a chart of them), and where the undo log, the changes and the commands are."""
    wr = s.get("writes")
    if not wr:
        return ""
    c = wr["counts"]
    dry = wr.get("mode") == "dry_run"
    mode = ("Dry run: nothing was written to Datastore; the counts are the writes the run "
            "would have made." if dry else
            f"Written to Datastore ({_e(wr.get('mode'))}).")
    totals = _table(["", *WRITE_COUNTS], [["<b>all namespaces</b>"] + [
        f'<span class="write-{k}">{_num(c.get(k, 0))}</span>' for k in WRITE_COUNTS]],
        "writes-total")
    per_ns = _table(["namespace", *WRITE_COUNTS],
                    [[f'<span class="ns">{_e(r[0])}</span>'] + [_num(v) for v in r[1:]]
                     for r in write_rows(s.get("namespaces", {}))], "writes-namespaces")
    where = []
    for label, key in (("undo log", "undo_log"), ("restore with", "restore"),
                       ("samples of the changes", "changes"), ("to apply it", "apply")):
        if wr.get(key):
            where.append(f"<li>{label}: <code>{_e(wr[key])}</code></li>")
    if not dry and not wr.get("undo_log"):
        where.append("<li>no undo log (--undo_log=false)</li>")
    return (f'<h2>Writes</h2>\n<p id="writes-mode" data-mode="{_e(wr.get("mode"))}">{mode}</p>'
            f"\n{totals}\n{per_ns}\n<ul>{''.join(where)}</ul>\n"
            '<div class="chart-wide"><canvas id="writes"></canvas></div>')


def _counters_section(s: dict) -> str:
    """The job's counters as a bar chart (when it counted anything)."""
    c = counter_chart(s)
    if not c:
        return ""
    more = len(s["totals"].get("counters", {})) - len(c["names"])
    return ("<h2>Counters</h2>\n<p class=\"note\">The job's counters in all, each bar split by "
            "namespace" + (f"; the {CHARTED_COUNTERS} largest of them (the {more} others are in"
                            " the tables above)" if more > 0 else "") + ".</p>\n"
            f'<div class="chart-wide" style="height: {120 + 24 * len(c["names"])}px">'
            '<canvas id="counters"></canvas></div>')


def _namespace_rows(namespaces: dict) -> list:
    rows = []
    for ns, n in namespaces.items():
        b = balance(n.get("range_entities", {}))
        kinds = n.get("kinds") or {}
        rows.append([f'<span class="ns">{_e(ns)}</span>', _e(", ".join(kinds) or ""),
                     f'<span class="ns-entities">{_num(n["entities"])}</span>',
                     _num(n["records"]), _num(n["ranges"]), _num(n["slices"]),
                     _num(n["queries"]), _num(n["retries"]), _num(n.get("errors", 0)),
                     _num(n["read_seconds"]), "—" if b is None else f"{b:.2f}",
                     _counters(n.get("counters", {}))])
    return rows


def render_report(summary: dict) -> str:
    """The report's HTML text."""
    s = summary
    namespaces = s.get("namespaces", {})
    title = f"datastore-mapper: {s.get('job', '')}"
    shown = charted(namespaces)
    cards = "".join(
        f'<section class="ns-card" data-namespace="{_e(ns)}"><h3>{_e(ns)}: '
        f'{_count(namespaces[ns]["entities"], "entity", "entities")}, '
        f'{_count(namespaces[ns]["ranges"], "range")}'
        f'</h3><canvas id="ranges-{i}"></canvas></section>'
        for i, ns in enumerate(shown))
    more = len(namespaces) - len(shown)
    charts = chart_data(s)
    scale = charts["scale"]
    data = json.dumps(charts, ensure_ascii=False).replace("</", "<\\/")
    total_counters = _counters(s["totals"].get("counters", {}))
    table = _table(["namespace", "kinds", "entities", "records", "ranges", "slices", "queries",
                    "retries", "failed", "read s", "balance", "counters"],
                   _namespace_rows(namespaces), "namespaces")
    rest = (f" The {more} smaller namespaces are in the table above only." if more > 0 else "")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }}
h1 {{ font-size: 1.4em; }} h2 {{ font-size: 1.15em; margin-top: 1.6em; }}
h3 {{ font-size: 1em; margin: .3em 0; }}
table {{ border-collapse: collapse; margin: .5em 0; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
table.overview td, table.namespaces td:last-child {{ text-align: left; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr));
         gap: 1em; }}
.ns-card {{ border: 1px solid #ddd; border-radius: 6px; padding: .6em; }}
.chart-wide {{ max-width: 1000px; height: 260px; }}
.note {{ color: #666; }}
.about-grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr));
               gap: 0 2em; max-width: 1000px; }}
table.target td, table.versions td, table.params td, table.files td:first-child {{
  text-align: left; }}
pre#command-line {{ white-space: pre-wrap; word-break: break-all; background: #f6f6f6;
                    padding: .5em; max-width: 1000px; }}
</style></head>
<body>
<h1>{_e(title)}</h1>
{_overview(s)}
{about_section(s)}
<h2>Entities read per second</h2>
<p class="note">From the launch to the end of the run; each step is one bucket of the
timeline, so the planning before the first read and the finishing after the last (hooks,
files, summary) show as zero.</p>
<div class="chart-wide"><canvas id="timeline"></canvas></div>
<h2>Namespaces</h2>
{table}
<p class="note">balance: the largest range's entities over the mean range's (1.00 is even).
read s: seconds spent reading, summed over slices.</p>
<p>total counters: {total_counters}</p>
{_counters_section(s)}
{_writes_section(s)}
<h2>Ranges: entities and seconds per range</h2>
<p class="note">Each bar pair is one initial range: entities read (left axis) and seconds spent
reading it (right axis); hover for its slices. Every chart has the same scales, the run's
largest range ({_num(scale["entities"])} entities, {scale["seconds"]:,.1f} s), so bars compare
across namespaces.{rest}</p>
<div class="grid">{cards}</div>
<script type="application/json" id="report-data">{data}</script>
<script>{chart_js()}</script>
<script>{_SCRIPT}</script>
</body></html>
"""


_SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  let charts = 0;
  const tl = data.timeline;
  // A point is a bucket's end: drawn as a step back to the point before, from 0.
  const steps = [{x: 0, y: 0}].concat(tl.points.map(p => ({x: p[0], y: p[1]})));
  new Chart(document.getElementById("timeline"), {
    type: "line",
    data: {datasets: [{label: "entities/s (" + tl.bucket_seconds + " s buckets)",
                       data: steps, fill: true, stepped: "before",
                       pointRadius: 0, borderColor: "#3366cc",
                       backgroundColor: "rgba(51,102,204,0.15)"}]},
    options: {maintainAspectRatio: false, animation: false,
              scales: {x: {type: "linear", min: 0, max: steps[steps.length - 1].x,
                           title: {display: true, text: "seconds since the start"}},
                       y: {beginAtZero: true, title: {display: true, text: "entities/s"}}}}
  });
  charts++;
  if (data.counters) {
    const palette = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6",
                     "#dd4477", "#66aa00", "#888888"];
    const c = data.counters;
    new Chart(document.getElementById("counters"), {
      type: "bar",
      data: {labels: c.names,
             datasets: c.series.map((s, j) => ({label: s[0], data: s[1],
                                                backgroundColor: palette[j % palette.length]}))},
      options: {indexAxis: "y", maintainAspectRatio: false, animation: false,
                scales: {x: {stacked: true, beginAtZero: true,
                             title: {display: true, text: "count"}},
                         y: {stacked: true}}}
    });
    charts++;
  }
  if (data.writes) {
    const colors = {put: "#109618", changed: "#3366cc", deleted: "#dc3912", failed: "#990099"};
    const w = data.writes;
    new Chart(document.getElementById("writes"), {
      type: "bar",
      data: {labels: w.namespaces.map(r => r[0]),
             datasets: w.series.map((name, j) => ({
               label: (w.dry_run ? "would be " : "") + name,
               data: w.namespaces.map(r => r[j + 1]), backgroundColor: colors[name]}))},
      options: {maintainAspectRatio: false, animation: false,
                scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true,
                         title: {display: true, text: "entities"}}}}
    });
    charts++;
  }
  data.namespaces.forEach(function (ns, i) {
    const rows = ns.ranges;
    new Chart(document.getElementById("ranges-" + i), {
      type: "bar",
      data: {labels: rows.map(r => r[0]),
             datasets: [{label: "entities", data: rows.map(r => r[1]), yAxisID: "y",
                         backgroundColor: "#3366cc"},
                        {label: "seconds", data: rows.map(r => r[2]), yAxisID: "y2",
                         backgroundColor: "#ff9900"}]},
      options: {animation: false,
                plugins: {tooltip: {callbacks: {footer: items => items.length ?
                  rows[items[0].dataIndex][3] + " slice(s)" : ""}}},
                scales: {y: {beginAtZero: true, position: "left",
                             max: data.scale.entities || undefined,
                             title: {display: true, text: "entities"}},
                         y2: {beginAtZero: true, position: "right",
                              max: data.scale.seconds || undefined,
                              grid: {drawOnChartArea: false},
                              title: {display: true, text: "seconds"}}}}
    });
    charts++;
  });
  document.body.dataset.charts = String(charts);
  document.body.dataset.rendered = "true";
})();
"""
