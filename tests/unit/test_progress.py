"""Job-wide progress: events folded, the estimate of the total, the lines shown, the events
files read as they grow."""
from __future__ import annotations

import json

from pipeline.core.keyorder import path_from_flat
from pipeline.core.keyrange import KeyRange
from pipeline.core.progress import (
    ProgressState,
    UnitProgress,
    enough_planned,
    estimate_total,
    format_line,
    format_seconds,
    gaps_passed,
    plan_gaps,
)
from pipeline.launch.progress import EventFiles, PlainView


def _unit(ns, ranges, gaps, capped=False, stat=None):
    return {"e": "unit", "unit": ns, "ns": ns, "ranges": ranges, "gaps": gaps, "capped": capped,
            "stat": stat}


def _slice(ns, entities, gaps, done=False, w="1:1", records=0):
    return {"e": "slice", "w": w, "unit": ns, "ns": ns, "range": f"{ns}#0",
            "entities": entities, "records": records, "gaps": gaps, "range_done": done}


def test_gaps_of_a_key_range_add_up_over_its_slices():
    k = lambda i: path_from_flat(("K", i))  # noqa: E731
    r = KeyRange(samples=(k(10), k(20), k(30)))
    assert plan_gaps(r) == 4
    assert gaps_passed(r, k(5), done=False) == 0
    assert gaps_passed(r, k(20), done=False) == 2
    rest = KeyRange(start=k(20), start_inclusive=False, samples=(k(30),))
    assert gaps_passed(rest, None, done=True) == 2  # 2 + 2 = 4
    assert plan_gaps("a value range") == 1 and gaps_passed("a value range", None, False) == 0


def test_the_estimate_scales_each_unit_by_the_gaps_passed():
    st = ProgressState(started=0.0)
    for e in ({"e": "namespaces", "n": 2}, _unit("a", 2, 10.0), _unit("b", 1, 4.0),
              {"e": "planned", "ns": "a"}, {"e": "planned", "ns": "b"},
              _slice("a", 300, 3.0)):
        st.apply(e)
    snap = st.snapshot(1.0)
    # a: 300 in 3 of 10 gaps -> 1000; b (not capped, not started): 4 gaps x 100 per gap.
    assert snap.estimated == 1400 and snap.entities == 300
    assert snap.ranges == 3 and snap.ranges_done == 0 and snap.namespaces_done == 0
    st.apply(_slice("b", 350, 4.0, done=True))
    snap = st.snapshot(2.0)
    assert snap.estimated == 1350 and snap.namespaces_done == 1  # b done: exactly 350


def test_a_capped_unit_is_guessed_from_the_capped_units_measured():
    units = [UnitProgress("big", 8, 257.0, capped=True, entities=2000, gaps_done=128.5),
             UnitProgress("big2", 8, 257.0, capped=True),
             UnitProgress("small", 1, 10.0, entities=20, gaps_done=10.0, ranges_done=1)]
    assert estimate_total(units, 3, 3, 2020) == 4000 + 4000 + 20


def test_statistics_count_for_a_unit_not_started():
    units = [UnitProgress("a", 8, 257.0, capped=True, stat=12345)]
    assert estimate_total(units, 1, 1, 0) == 12345


def test_no_estimate_before_anything_is_measured_or_listed():
    assert estimate_total([UnitProgress("a", 8, 257.0, capped=True)], 1, 1, 0) is None
    assert estimate_total([], None, 0, 0) is None


def test_unplanned_namespaces_count_as_the_mean_planned_one():
    units = [UnitProgress(ns, 1, 4.0, entities=100, gaps_done=4.0, ranges_done=1)
             for ns in "abc"]
    assert estimate_total(units, 10, 3, 300) == 1000


def test_no_estimate_until_enough_namespaces_are_planned():
    """A tiny tenant planned first said "7 of ~21 entities (33%)" of a run of 1,507."""
    tiny = [UnitProgress("tiny", 1, 1.0, entities=7, gaps_done=1.0, ranges_done=1)]
    assert estimate_total(tiny, 3, 1, 7) is None
    assert estimate_total(tiny, 3, 2, 7) is None
    assert estimate_total(tiny, 1, 1, 7) == 7
    assert [enough_planned(n) for n in (1, 2, 3, 10, 30, 31, 2000)] == [1, 2, 3, 3, 3, 4, 200]


def test_a_slice_seen_before_its_units_plan_keeps_its_count():
    st = ProgressState(started=0.0)
    st.apply({"e": "namespaces", "n": 1})
    st.apply(_slice("a", 50, 1.0))
    assert st.snapshot(1.0).estimated is None  # the plan is not known yet
    st.apply(_unit("a", 1, 2.0))
    st.apply({"e": "planned", "ns": "a"})
    snap = st.snapshot(2.0)
    assert snap.entities == 50 and snap.estimated == 100


def test_slices_still_going_count_until_their_slice_arrives():
    st = ProgressState(started=0.0)
    st.apply({"e": "namespaces", "n": 1})
    st.apply(_unit("a", 1, 2.0))
    st.apply({"e": "reading", "w": "9:9", "entities": 256})
    assert st.snapshot(1.0).entities == 256
    st.apply(_slice("a", 300, 1.0, w="9:9"))
    assert st.snapshot(2.0).entities == 300


def test_rate_and_eta_from_the_first_entity_read():
    st = ProgressState(started=0.0)
    st.apply({"e": "namespaces", "n": 1})
    st.apply(_unit("a", 1, 10.0))
    st.apply({"e": "planned", "ns": "a"})
    assert st.snapshot(5.0).rate is None  # nothing read yet: no rate from the idle start
    st.apply(_slice("a", 0, 0.0))
    st.snapshot(6.0)
    st.apply(_slice("a", 200, 2.0))
    snap = st.snapshot(8.0)
    assert snap.rate == 100.0 and snap.estimated == 1000 and snap.eta == 8.0
    line = format_line(snap)
    assert line == ("progress: namespaces 1/1 planned, 0 done; ranges 0/1; 200 of ~1,000 "
                    "entities (20%); 100/s; ETA 8 s"), line


def test_lines_before_listing_at_the_end_and_when_finished():
    st = ProgressState(started=0.0)
    assert format_line(st.snapshot(1.0)) == "progress: listing namespaces"
    st.apply({"e": "namespaces", "n": 1})
    st.apply(_unit("a", 1, 1.0))
    st.apply({"e": "planned", "ns": "a"})
    st.apply(_slice("a", 5, 1.0, done=True, records=5))
    assert "all read; finishing" in format_line(st.snapshot(2.0))
    st.finished = True
    line = format_line(st.snapshot(3.0))
    assert line.startswith("progress: namespaces 1/1 planned, 1 done; ranges 1/1; 5 entities; "
                           "5 records") and line.endswith("done in 3 s"), line


def test_format_seconds():
    assert [format_seconds(t) for t in (0.2, 59, 61, 3599, 7260)] == [
        "0 s", "59 s", "1 min 01 s", "59 min 59 s", "2 h 01 min"]


def test_event_files_are_read_as_they_grow_whole_lines_only(tmp_path):
    f = tmp_path / "events-1.jsonl"
    files = EventFiles(str(tmp_path))
    f.write_bytes(b'{"e": "namespaces", "n": 2}\n{"e": "plan')
    assert list(files.read()) == [{"e": "namespaces", "n": 2}]
    with open(f, "ab") as out:
        out.write(b'ned", "ns": "a"}\n')
    (tmp_path / "events-2.jsonl").write_text(json.dumps({"e": "planned", "ns": "b"}) + "\n")
    assert list(files.read()) == [{"e": "planned", "ns": "a"}, {"e": "planned", "ns": "b"}]
    assert list(files.read()) == []


def test_plain_view_prints_every_interval_and_a_last_line():
    lines: list = []
    view = PlainView(lines.append, every=5)
    st = ProgressState(started=0.0)
    st.apply({"e": "namespaces", "n": 0})
    for t in (0.0, 1.0, 5.0, 6.0, 10.5):
        view.show(st.snapshot(t), t)
    assert len(lines) == 1  # the same line is not said twice in a row
    st.apply({"e": "namespaces", "n": 1})
    view.show(st.snapshot(16.0), 16.0)
    assert len(lines) == 2
    st.finished = True
    view.close(st.snapshot(17.0))
    assert len(lines) == 3 and "done in 17 s" in lines[-1]


def _writing_slice(ns, entities, gaps, writes, done=False, w="1:1"):
    return {**_slice(ns, entities, gaps, done=done, w=w), "writes": writes}


def test_writes_are_summed_over_slices_and_shown_with_the_mode():
    for mode, head in (("dry_run", "dry run, would write"),
                       ("transactional", "writes (transactional)")):
        st = ProgressState(started=0.0, write_mode=mode)
        st.apply({"e": "namespaces", "n": 2})
        st.apply(_unit("a", 1, 10.0))
        st.apply(_unit("b", 1, 10.0))
        st.apply({"e": "planned", "ns": "a"})
        st.apply({"e": "planned", "ns": "b"})
        st.snapshot(1.0)
        st.apply(_writing_slice("a", 100, 2.0, {"changed": 60, "unchanged": 40}))
        st.apply(_writing_slice("b", 50, 1.0, {"put": 3, "deleted": 2, "failed": 1}, w="2:1"))
        snap = st.snapshot(3.0)
        assert snap.written == 65 and snap.writes == {"changed": 60, "unchanged": 40, "put": 3,
                                                      "deleted": 2, "failed": 1}
        assert snap.write_rate == 32.5
        line = format_line(snap)
        assert line.endswith(f"; {head} 65 (put 3, changed 60, deleted 2; failed 1), 32/s; "
                             "ETA 11 s"), line


def test_a_job_that_writes_nothing_shows_no_writes():
    st = ProgressState(started=0.0)
    st.apply({"e": "namespaces", "n": 1})
    st.apply(_unit("a", 1, 1.0))
    st.apply({"e": "planned", "ns": "a"})
    st.apply(_slice("a", 5, 1.0, done=True))
    snap = st.snapshot(2.0)
    assert snap.write_mode is None and snap.written == 0 and snap.write_rate is None
    assert "writ" not in format_line(snap)


def test_writes_of_slices_still_going_count_until_their_slice_arrives():
    st = ProgressState(started=0.0, write_mode="blind")
    st.apply({"e": "namespaces", "n": 1})
    st.apply(_unit("a", 2, 4.0))
    st.apply({"e": "planned", "ns": "a"})
    st.apply({"e": "reading", "w": "1:1", "entities": 300, "written": 120})
    st.apply({"e": "reading", "w": "2:1", "entities": 100})  # no writes said yet
    assert st.snapshot(1.0).written == 120
    st.apply(_writing_slice("a", 310, 2.0, {"changed": 125}, w="1:1"))
    snap = st.snapshot(2.0)
    assert snap.written == 125 and snap.entities == 410
    assert "writes (blind) 125 (changed 125)" in format_line(snap)


def test_slice_reporter_sends_a_slice_s_writes(tmp_path):
    from pipeline.graph.progress import Channel, SliceReporter, write_counts

    assert write_counts({"writes.changed": 4, "writes.put": 0, "genre:x": 9}) == {"changed": 4}
    ch = Channel(str(tmp_path))
    rep = SliceReporter(ch, "acme", "acme", "acme#0")
    rep._last = float("-inf")  # a reading event is due
    rep.reading(256, {"writes.changed": 7, "writes.deleted": 1, "writes.unchanged": 5})
    rep.done(300, 0, 0, 0, 1.0, True, {"writes.changed": 9, "writes.unchanged": 6})
    rep.done(10, 0, 0, 0, 1.0, True)  # a job that writes nothing: no writes field
    events = list(EventFiles(str(tmp_path)).read())
    assert events[0]["written"] == 8
    assert events[1]["writes"] == {"changed": 9, "unchanged": 6}
    assert "writes" not in events[2]


def test_plain_view_of_a_run_that_lists_no_namespace_says_what_it_does_once():
    """A restore reads its files and lists no namespace: its lines say so, then how long it
    took, never "listing namespaces", never the same line twice (the last one included)."""
    lines: list = []
    view = PlainView(lines.append, every=0.5, idle="restoring from the undo log or backup")
    st = ProgressState(started=0.0)
    for t in (0.0, 0.6, 1.2, 1.8):
        view.show(st.snapshot(t), t)
    st.finished = True
    view.close(st.snapshot(2.2))
    assert lines == ["progress: restoring from the undo log or backup", "progress: done in 2 s"]
    # Nothing new at the end: the last line is not said again.
    again: list = []
    view = PlainView(again.append, every=0.5)
    st = ProgressState(started=0.0)
    view.show(st.snapshot(0.0), 0.0)
    view.show(st.snapshot(0.6), 0.6)
    view.close(st.snapshot(0.7))
    assert again == ["progress: listing namespaces"]
