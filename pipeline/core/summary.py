"""The run's summary: the job's totals per namespace and in all, as JSON (``summary.json``) and as
the lines the terminal shows at the end of a run. Pure: the summary step in
``pipeline.graph.summary`` builds and writes it."""
from __future__ import annotations

import datetime as dt
import io
import json
import math
from typing import Optional

from pipeline.core.erase import erase_lines
from pipeline.core.namespaces import namespace_label
from pipeline.core.terminal import escape_tree
from pipeline.core.totals import Totals

#: A log record of the summary carries this attribute (true): the local CLI prints the summary
#: itself, so when the run is in its own process that record goes to the workers' log only.
PRINTED_BY_THE_CLI = "printed_by_the_cli"


def build_summary(job: str, query: str, params: dict, started: dt.datetime,
                  finished: dt.datetime, per_namespace: dict, cap: int,
                  read_time: Optional[dt.datetime] = None) -> dict:
    """The summary as summary.json holds it: per namespace (labelled) and in total."""
    total = Totals()
    for t in per_namespace.values():
        total.add(t, cap)
    seconds = max((finished - started).total_seconds(), 1e-9)
    out = {
        "job": job, "query": query, "params": dict(params),
        "read_time": read_time.isoformat() if read_time else None,
        "started": started.isoformat(), "finished": finished.isoformat(),
        "seconds": round(seconds, 3),
        "entities_per_second": round(total.entities / seconds, 1),
        "totals": total.to_json(),
        "namespaces": {namespace_label(ns): per_namespace[ns].to_json()
                       for ns in sorted(per_namespace)},
        "timeline": timeline(total.timeline, started, seconds),
    }
    return out


#: The summary's timeline has at most this many points (wider buckets for longer runs).
TIMELINE_POINTS = 300


def timeline(per_second: dict, started: dt.datetime, seconds: float = 0.0) -> dict:
    """Entities read over time, for the report: ``bucket_seconds`` and ``points`` of
    [seconds since the start at the END of a bucket, entities/s over that bucket], from 0 to
    the run's end (``seconds``), the buckets widened so that a long run has at most
    TIMELINE_POINTS.

    ``per_second`` is keyed by whole seconds since the epoch, which the launch time does not
    fall on: buckets are cut on those whole seconds, so the first one ends less than a bucket
    after the start and the last one is cut at the run's end. A point at a bucket's end (a
    step drawn back to the point before) shows each bucket over the time it covers; points at
    a bucket's start, and no buckets after the last entity read, ended the curve up to two
    seconds early and left the run's finishing time (hooks, files, summary) out."""
    t0 = started.timestamp()
    end = max(seconds, (max(per_second) + 1 - t0) if per_second else 0.0, 0.0)
    first = int(t0)  # bucket b holds the whole seconds first + b*width .. + width - 1
    width = max(1, math.ceil((end + t0 - first) / TIMELINE_POINTS))
    buckets: dict = {}
    for second, n in per_second.items():
        b = max(int(second) - first, 0) // width
        buckets[b] = buckets.get(b, 0) + n
    points, b = [], 0
    while True:
        x = min(first + (b + 1) * width - t0, end)
        points.append([round(x, 2), round(buckets.get(b, 0) / width, 1)])
        if x >= end:
            return {"bucket_seconds": width, "points": points}
        b += 1


#: Namespaces the printed summary shows, the largest first; summary.json has them all.
SHOWN_NAMESPACES = 20


def format_summary(s: dict, shown: int = SHOWN_NAMESPACES) -> str:
    """The summary as the terminal shows it at the end of a run: the ``shown`` largest
    namespaces (in name order) and a line for the rest, so thousands of tenants take a screen,
    not thousands of lines. Every string of the summary (names, counters, values, paths: data)
    is shown with its control characters escaped (``pipeline.core.terminal``): the table's lines
    are the only line breaks."""
    s = escape_tree(s)
    t = s["totals"]
    # A run that read its entities from no key range (a restore reads its files) does not
    # show ranges.
    ranges = bool(t["ranges"]) or not t["entities"]
    lines = [
        f"job {s['job']}: {plural(t['entities'], 'entity', 'entities')} in "
        f"{plural(len(s['namespaces']), 'namespace')}, "
        + (f"{plural(t['ranges'], 'range')}, " if ranges else "")
        + f"{s['seconds']:.1f} s ({s['entities_per_second']:.0f} entities/s)",
        f"query: {s['query']}",
    ]
    if s.get("read_time"):
        lines.append(f"read time: {s['read_time']}")
    if t["records"]:
        lines.append(f"records output: {t['records']}")
    namespaces, rest = largest(s["namespaces"], shown)
    width = max([len(n) for n in namespaces] + [9])
    if any(n.get("kinds") for n in s["namespaces"].values()):
        lines.extend(_rows_per_kind(namespaces, width, ranges))
    else:
        lines.append(f"  {'namespace':<{width}}  {'entities':>9}  "
                     + (f"{'ranges':>6}  " if ranges else "") + "counters")
        for ns, n in namespaces.items():
            lines.append(f"  {ns:<{width}}  {n['entities']:>9}  "
                         + (f"{n['ranges']:>6}  " if ranges else "") + _counters(n))
    if rest:
        lines.append(_rest_line(rest, ranges))
    if t["counters"]:
        lines.append("total counters: " + ", ".join(f"{k}={v}" for k, v in t["counters"].items()))
    if s.get("writes"):
        lines.extend(_writes_lines(s["writes"]))
    if s.get("erase"):
        lines.extend(erase_lines(s["erase"]))
    return "\n".join(lines)


def plural(n: int, one: str, many: str = "") -> str:
    """``1 range``, ``26 ranges``."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def largest(namespaces: dict, shown: int) -> tuple:
    """({label: row} of the ``shown`` namespaces with the most entities, in name order,
    [rows of the others])."""
    if len(namespaces) <= shown:
        return namespaces, []
    ranked = sorted(namespaces, key=lambda ns: (-namespaces[ns]["entities"], ns))
    keep = set(ranked[:shown])
    return ({ns: n for ns, n in namespaces.items() if ns in keep},
            [namespaces[ns] for ns in ranked[shown:]])


def _rest_line(rest: list, show_ranges: bool = True) -> str:
    entities = sum(n["entities"] for n in rest)
    ranges = sum(n["ranges"] for n in rest)
    return (f"  ... and {len(rest)} more namespaces: {entities} entities, "
            + (f"{ranges} ranges, " if show_ranges else "") +
            f"at most {max(n['entities'] for n in rest)} each (every namespace is in "
            "summary.json)")


def _writes_lines(wr: dict) -> list:
    c = wr["counts"]
    done = (f"put {c['put']}, changed {c['changed']}, deleted {c['deleted']}, unchanged "
            f"{c['unchanged']}")
    extra = ", ".join(f"{k} {c[k]}" for k in ("gone", "conflicts", "failed", "outside_namespaces")
                      if c.get(k))
    if wr["mode"] == "dry_run":
        lines = [f"dry run: nothing was written; it would have {done}"
                 + (f" ({extra})" if extra else "")]
        if wr.get("changes"):
            lines.append(f"samples of the changes: {wr['changes']}")
        if wr.get("apply"):
            lines.append(f"to apply it: {wr['apply']}")
        return lines
    lines = [f"writes ({wr['mode']}): {done}" + (f" ({extra})" if extra else "")]
    if not (c["put"] or c["changed"] or c["deleted"]):
        lines.append("nothing was written, so nothing needs undoing")
    elif wr.get("undo_log"):
        lines.append(f"undo log: {wr['undo_log']} (restore with: {wr['restore']})")
    else:
        lines.append("no undo log (--undo_log=false)")
    return lines


def _counters(n: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in n["counters"].items())


def _rows_per_kind(namespaces: dict, width: int, ranges: bool = True) -> list:
    """A row per (namespace, kind), and the namespace's own when it has several kinds."""
    kinds = [k for n in namespaces.values() for k in n.get("kinds", {})]
    kw = max([len(k) for k in kinds] + [4])
    r = (lambda row: f"{row['ranges']:>6}  ") if ranges else (lambda row: "")
    lines = [f"  {'namespace':<{width}}  {'kind':<{kw}}  {'entities':>9}  "
             + (f"{'ranges':>6}  " if ranges else "") + "counters"]
    for ns, n in namespaces.items():
        per_kind = n.get("kinds", {})
        for kind, k in per_kind.items():
            lines.append(f"  {ns:<{width}}  {kind:<{kw}}  {k['entities']:>9}  "
                         f"{r(k)}{_counters(k)}")
        if len(per_kind) != 1:
            lines.append(f"  {ns:<{width}}  {'(all)':<{kw}}  {n['entities']:>9}  "
                         f"{r(n)}{_counters(n)}")
    return lines


#: summary.json's encoder.
_ENCODER = json.JSONEncoder(indent=2, sort_keys=False, ensure_ascii=False, default=str)


def json_pieces(summary: dict, size: int = 1 << 18):
    """summary.json's text, UTF-8 encoded, in pieces of about ``size`` characters: written
    as it is made, the text of a run of many namespaces is never whole in memory (at 20,000,
    the whole text, its encoder's pieces and its bytes took 77 MB at once). The encoder's
    many small pieces go into one buffer (a list of them costs ten times their size)."""
    buf = io.StringIO()
    for chunk in _ENCODER.iterencode(summary):
        buf.write(chunk)
        if buf.tell() >= size:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    buf.write("\n")
    yield buf.getvalue().encode("utf-8")
