"""Terminal-safe text (``pipeline.core.terminal``) and where it is applied: the CLI's own lines,
the ``error:`` line, log records, the printed summary."""
from __future__ import annotations

import io
import logging

import pytest

from pipeline.core import terminal
from pipeline.core.summary import PRINTED_BY_THE_CLI, format_summary
from pipeline.errors import JobFailed, QueryError
from pipeline.launch import logs
from pipeline.launch.logs import RedactingFilter


@pytest.mark.parametrize("raw, shown", [
    ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
    ("\x1b[2J", "\\x1b[2J"),
    ("a\nerror: fake", "a\\nerror: fake"),
    ("a\rb\tc", "a\\rb\\tc"),
    ("\x00\x7f", "\\x00\\x7f"),
    ("\x9b31m\x85", "\\x9b31m\\x85"),  # C1: a one-character CSI; NEL
    ("\u202eevil\u2066x\u2069\u202a", "\\u202eevil\\u2066x\\u2069\\u202a"),
    ("\u2028\u2029", "\\u2028\\u2029"),
    ("é データ ü \\x1b plain", "é データ ü \\x1b plain"),  # printable text and backslashes stay
])
def test_escape(raw, shown):
    assert terminal.escape(raw) == shown
    assert terminal.escape(shown) == shown  # idempotent
    assert terminal.is_safe(shown) and (raw == shown or not terminal.is_safe(raw))


def test_escape_lines_keeps_only_line_feeds():
    assert terminal.escape_lines("a\nb\x1b[2J\r\n") == "a\nb\\x1b[2J\\r\n"


def test_escape_tree_escapes_keys_and_values():
    assert terminal.escape_tree({"k\x1b": ["v\n", 3, {"x": "\x07"}], "n": None}) == {
        "k\\x1b": ["v\\n", 3, {"x": "\\x07"}], "n": None}


def test_the_error_line_is_one_line_whatever_the_data(capsys):
    logs.error(logs.failure_message(
        JobFailed("job j failed on entity Item 'a\x1b[2J': ValueError: x\nerror: fake")))
    err = capsys.readouterr().err
    assert err == "error: job j failed on entity Item 'a\\x1b[2J': ValueError: x\\nerror: fake\n"


def test_our_own_detail_lines_stay_lines(capsys):
    e = QueryError("needs an index for kind K\x1b:", detail="indexes:\n- kind: K")
    logs.error(logs.failure_message(e))
    assert capsys.readouterr().err == "error: needs an index for kind K\\x1b:\nindexes:\n- kind: K\n"


def test_a_hooks_print_is_one_line_per_print():
    out = io.StringIO()
    stream = terminal.TerminalSafeStream(out)
    print("value", "a\nerror: fake\x1b[2J", file=stream)
    assert out.getvalue() == "value a\\nerror: fake\\x1b[2J\n"


def _record(msg, *args, **extra):
    r = logging.LogRecord("x", logging.WARNING, __file__, 1, msg, args, None)
    r.__dict__.update(extra)
    RedactingFilter().filter(r)
    return r.getMessage()


def test_log_records_escape_their_arguments_not_their_format():
    assert _record("value %s", "a\nerror: fake\x1b[2J") == "value a\\nerror: fake\\x1b[2J"
    assert _record("lines:\n%s", "a\nb") == "lines:\na\\nb"
    assert _record("%d entities of %r", 3, "K\x07") == "3 entities of 'K\\x07'"
    assert _record("summary:\n%s", "a\nb\x1b", **{PRINTED_BY_THE_CLI: True}) == "summary:\na\nb\\x1b"


def test_the_summary_escapes_the_data_in_every_row():
    counters = {"value:\x1b[2J": 1, "value:a\nerror: fake": 2}
    ns = {"entities": 3, "ranges": 1, "counters": counters,
          "kinds": {"K\x1b]0;t\x07": {"entities": 3, "ranges": 1, "counters": counters}}}
    s = {"job": "j", "query": "kind K\x1b", "seconds": 1.0, "entities_per_second": 3,
         "totals": {"entities": 3, "ranges": 1, "records": 0, "counters": counters},
         "namespaces": {"ns\x07": ns}}
    text = format_summary(s)
    assert terminal.is_safe(text.replace("\n", ""))
    assert not any(line.startswith("error:") for line in text.split("\n"))
    assert "K\\x1b]0;t\\x07" in text and "value:a\\nerror: fake=2" in text
