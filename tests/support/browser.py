"""A real headless Chromium for the report's tests: skipped, with a reason naming the
browser (``.ci/run`` counts and reports such skips), only when it cannot be started here."""
from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from devtools.browser import BrowserUnavailable, Chromium


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
    console, a chart missing, a namespace's numbers not shown."""
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
    if len(canvases) != 1 + min(len(namespaces), 50) + (1 if writes else 0):
        problems.append(f"{len(canvases)} charts for {len(namespaces)} namespaces"
                        + (" and the writes" if writes else ""))
    if writes:
        problems += _writes_problems(d, writes)
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
