"""The run report: one self-contained HTML file (``OUTPUT/JOB/report.html``) made from the
summary, that opens offline: its chart code is inlined.

What it shows: the run's figures (entities, records, ranges, slices, queries, retries, dead
letters, writes), entities/s over time, and per namespace (per kind too, when the job reads
several) its ranges as bars of entities and seconds, so balance and stragglers show at a
glance, with the slices of each range, and its counters.

Charts are drawn by Chart.js (MIT; ``assets/chart.umd.min.js``, 4.6.1, about 210 KB, inlined):
a single file with no dependencies, canvas-drawn so thousands of bars stay fast, and kept up
by an active project. Pure: the summary step writes the text this returns.
"""
from __future__ import annotations

import html
import json
from importlib import resources
from typing import Optional

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


def chart_data(summary: dict) -> dict:
    namespaces = summary.get("namespaces", {})
    out = {
        "timeline": summary.get("timeline", {"bucket_seconds": 1, "points": []}),
        "namespaces": [{"name": ns, "ranges": range_rows(namespaces[ns])}
                       for ns in charted(namespaces)],
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
    data = json.dumps(chart_data(s), ensure_ascii=False).replace("</", "<\\/")
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
</style></head>
<body>
<h1>{_e(title)}</h1>
{_overview(s)}
<h2>Entities read per second</h2>
<div class="chart-wide"><canvas id="timeline"></canvas></div>
<h2>Namespaces</h2>
{table}
<p class="note">balance: the largest range's entities over the mean range's (1.00 is even).
read s: seconds spent reading, summed over slices.</p>
<p>total counters: {total_counters}</p>
{_writes_section(s)}
<h2>Ranges: entities and seconds per range</h2>
<p class="note">Each bar pair is one initial range: entities read (left axis) and seconds spent
reading it (right axis); hover for its slices.{rest}</p>
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
  new Chart(document.getElementById("timeline"), {
    type: "line",
    data: {labels: tl.points.map(p => p[0]),
           datasets: [{label: "entities/s (" + tl.bucket_seconds + " s buckets)",
                       data: tl.points.map(p => p[1]), fill: true, tension: 0.2,
                       pointRadius: 0, borderColor: "#3366cc",
                       backgroundColor: "rgba(51,102,204,0.15)"}]},
    options: {maintainAspectRatio: false, animation: false,
              scales: {x: {title: {display: true, text: "seconds since the start"}},
                       y: {beginAtZero: true, title: {display: true, text: "entities/s"}}}}
  });
  charts++;
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
                             title: {display: true, text: "entities"}},
                         y2: {beginAtZero: true, position: "right",
                              grid: {drawOnChartArea: false},
                              title: {display: true, text: "seconds"}}}}
    });
    charts++;
  });
  document.body.dataset.charts = String(charts);
  document.body.dataset.rendered = "true";
})();
"""
