"""A real headless Chromium for the report's tests: skipped, with a reason naming the
browser (``.ci/run`` counts and reports such skips), only when it cannot be started here."""
from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from tests.support.chromium import BrowserUnavailable, Chromium


@pytest.fixture(scope="session")
def chromium() -> Iterator[Chromium]:
    try:
        browser = Chromium()
    except BrowserUnavailable as e:
        pytest.skip(f"headless browser unavailable: {e}")
    try:
        yield browser
    finally:
        browser.close()


def report_problems(browser: Chromium, path: str, summary: dict) -> list:
    """What is wrong with a report as a browser shows it: not rendered, script errors on the
    console, a chart missing, a namespace's numbers not shown, the run's parameters, target,
    command line, versions or files not shown as the summary has them, the counters chart
    not drawn, the entities/s curve ending before the run, range charts scaled apart."""
    browser.console()  # drop what an earlier page logged
    problems = []
    if not browser.open(path):
        problems.append("the report's script did not finish (document.body.dataset.rendered)")
    problems += [f"console: {e['message']}" for e in browser.console() if e["level"] == "SEVERE"]
    d = browser.driver
    canvases = d.execute_script(
        "return Array.from(document.querySelectorAll('canvas')).map(c => "
        "[c.id, typeof Chart !== 'undefined' && Chart.getChart(c) ? 1 : 0])")
    problems += [f"no chart drawn on canvas {cid}" for cid, drawn in canvases if not drawn]
    namespaces = summary["namespaces"]
    writes = summary.get("writes")
    counters = bool(summary["totals"].get("counters"))
    if len(canvases) != 1 + min(len(namespaces), 50) + (1 if writes else 0) + counters:
        problems.append(f"{len(canvases)} charts for {len(namespaces)} namespaces"
                        + (" and the writes" if writes else "")
                        + (" and the counters" if counters else ""))
    if writes:
        problems += _writes_problems(d, writes)
    problems += _about_problems(d, summary) + _chart_problems(d, summary)
    rows = d.execute_script(
        "return Array.from(document.querySelectorAll('table.namespaces tbody tr')).map(r => "
        "[r.querySelector('.ns').innerText, r.querySelector('.ns-entities').innerText])")
    shown = {ns: int(re.sub(r"\D", "", n)) for ns, n in rows}
    want = {ns: n["entities"] for ns, n in namespaces.items()}
    if shown != want:
        problems.append(f"namespaces shown {shown}, the summary has {want}")
    total = d.execute_script("return document.getElementById('total-entities').innerText")
    if int(re.sub(r"\D", "", total)) != summary["totals"]["entities"]:
        problems.append(f"total entities shown {total}, the summary has "
                        f"{summary['totals']['entities']}")
    return problems


def _writes_problems(d, writes: dict) -> list:
    """The writes section shows the run's mode and its counts from the summary."""
    problems = []
    mode = d.execute_script(
        "const m = document.getElementById('writes-mode'); "
        "return m ? [m.dataset.mode, m.innerText] : null")
    if mode is None:
        return ["no writes section"]
    if mode[0] != writes["mode"] or (("Dry run" in mode[1]) != (writes["mode"] == "dry_run")):
        problems.append(f"writes shown as {mode}, the summary's mode is {writes['mode']}")
    shown = d.execute_script(
        "return Array.from(document.querySelectorAll('table.writes-total span[class^=write-]'))"
        ".map(s => [s.className.slice(6), s.innerText])")
    shown = {k: int(re.sub(r"\D", "", v)) for k, v in shown}
    want = {k: v for k, v in writes["counts"].items() if k in shown or v}
    if shown != {k: want.get(k, 0) for k in shown} or set(want) - set(shown):
        problems.append(f"writes shown {shown}, the summary has {writes['counts']}")
    return problems


def _about_problems(d, summary: dict) -> list:
    """Parameters, target, command line, versions and files are shown as the summary has
    them (the text as a reader sees it: escaped data comes back as the data)."""
    problems = []
    shown = d.execute_script(
        "return {params: Array.from(document.querySelectorAll('table.params tbody tr')).map("
        "r => [r.cells[0].innerText, r.cells[1].innerText]),"
        " project: (document.getElementById('target-project') || {}).innerText,"
        " emulator: (document.getElementById('target-emulator') || {}).innerText,"
        " command: document.getElementById('command-line').innerText,"
        " versions: Array.from(document.querySelectorAll('code.version')).map("
        "c => [c.dataset.package, c.innerText]),"
        " files: Array.from(document.querySelectorAll('table.files tbody tr')).map("
        "r => [r.cells[0].textContent, r.cells[1].dataset.bytes])}")
    params = {k: str(v) for k, v in summary.get("params", {}).items()}
    if dict(shown["params"]) != params:
        problems.append(f"parameters shown {shown['params']}, the summary has {params}")
    target = summary.get("target") or {}
    if shown["project"] != target.get("project") or shown["emulator"] != target.get(
            "emulator_host"):
        problems.append(f"target shown {shown['project']} / {shown['emulator']}, the summary "
                        f"has {target}")
    if summary.get("command_line") and shown["command"].strip() != summary["command_line"]:
        problems.append(f"command line shown {shown['command']!r}, the summary has "
                        f"{summary.get('command_line')!r}")
    if dict(shown["versions"]) != summary.get("versions"):
        problems.append(f"versions shown {shown['versions']}, the summary has "
                        f"{summary.get('versions')}")
    sizes = summary.get("file_bytes", {})
    # summary.json's size is known to the report only (written just before it), and the
    # report is the file shown
    aside = ("summary.json", "report.html")
    files = {name: int(b) if b else None for name, b in shown["files"]
             if not name.endswith(aside)}
    want = {name: sizes.get(name) for name in [*summary.get("files", []), *sizes]
            if not name.endswith(aside)}
    if files != want:
        problems.append(f"files shown {files}, the summary has {want}")
    return problems


def _chart_problems(d, summary: dict) -> list:
    """The curve runs to the end of the run (its last x at most a bucket short of the run's
    seconds); the counters chart has the summary's counters; every range chart has the
    same scales."""
    problems = []
    charts = d.execute_script(
        "if (typeof Chart === 'undefined') return null;"
        "const g = id => Chart.getChart(document.getElementById(id));"
        "const tl = g('timeline'), c = g('counters');"
        "const ranges = Array.from(document.querySelectorAll('canvas[id^=ranges-]')).map("
        "x => Chart.getChart(x)).filter(x => x).map(x => [x.scales.y.max, x.scales.y2.max]);"
        "return {last: tl ? tl.data.datasets[0].data.at(-1).x : null,"
        " counters: c ? c.data.labels : null, ranges: ranges}")
    if charts is None:
        return ["no chart library: no chart to check"]
    seconds, bucket = summary["seconds"], summary["timeline"]["bucket_seconds"]
    if charts["last"] is None or charts["last"] < seconds - bucket:
        problems.append(f"the entities/s curve ends at {charts['last']} s of a {seconds} s run")
    counters = summary["totals"].get("counters", {})
    if counters and (not charts["counters"] or set(charts["counters"]) - set(counters)):
        problems.append(f"counters charted {charts['counters']}, the summary has "
                        f"{sorted(counters)}")
    if len({tuple(r) for r in charts["ranges"]}) > 1:
        problems.append(f"the range charts have different scales: {charts['ranges']}")
    return problems
