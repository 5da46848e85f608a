"""``--params`` carries any value (issue 22, point 8): ``\\,`` is a comma inside a value,
``\\\\`` a backslash, ``\\ `` a space kept at a value's end; ``quote_param`` writes a value so,
and what it writes reads back exactly. What was accepted before reads the same."""
from __future__ import annotations

import argparse

import pytest

from pipeline.launch.options import key_value_list, quote_param
from pipeline.launch.resolve import restore_command


@pytest.mark.parametrize("value", [
    "/tmp/out,with comma/undo", "gs://b/a,b,,c/undo", "C:\\temp\\x", "ends with \\",
    "\\,", " lead", "trail ", " ", "", "x=y,z=w", "é データ, ü", "tab\tinside\t", "a\nb",
])
def test_a_quoted_value_reads_back_exactly(value):
    text = f"from={quote_param(value)},b=2"
    assert key_value_list(text) == [("from", value), ("b", "2")]
    assert key_value_list(f"from={quote_param(value)}") == [("from", value)]


@pytest.mark.parametrize("text, pairs", [
    ("kind=Order,property=status", [("kind", "Order"), ("property", "status")]),
    (" a = 1 , b=2 ", [("a", "1"), ("b", "2")]),
    ("a=1,,b=2", [("a", "1"), ("b", "2")]),
    ("q=a=b", [("q", "a=b")]),
    ("p=C:\\temp\\x", [("p", "C:\\temp\\x")]),  # a backslash before anything else is itself
    ("from=", [("from", "")]),
    ("from=/a\\,b", [("from", "/a,b")]),
])
def test_what_was_accepted_reads_the_same(text, pairs):
    assert key_value_list(text) == pairs


@pytest.mark.parametrize("text", ["novalue", "=x", "a=1,b", "a=1\\,=2,b"])
def test_not_name_value_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match="is not NAME=VALUE"):
        key_value_list(text)


def test_the_restore_command_quotes_the_path_for_params_and_the_shell():
    import shlex

    undo = "/tmp/it's, a \"dir\" $HOME/set_property/runs/r1/undo"
    cmd = restore_command(["--job", "set_property", "--project", "p", "--output",
                           "/tmp/it's, a \"dir\" $HOME"], undo)
    argv = shlex.split(cmd)
    params = argv[argv.index("--params") + 1]
    assert key_value_list(params) == [("from", undo)]
    assert argv[argv.index("--output") + 1] == "/tmp/it's, a \"dir\" $HOME"
