"""Command-line option values: parsed, and refused with what is accepted."""
from __future__ import annotations

import argparse
import datetime as dt

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.errors import UsageError
from pipeline.launch.resolve import MapperOptions
from pipeline.launch.options import (
    help_parser,
    key_value_list,
    name_list,
    parse_bool,
    parse_read_time,
    positive_float,
    read_time_value,
    seconds,
    whole_number,
)

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def test_parse_read_time():
    assert parse_read_time(None, NOW) is None
    assert parse_read_time("start", NOW) == NOW
    assert parse_read_time(" START ", NOW) == NOW
    t = parse_read_time("2026-11-27T11:30:00Z", NOW)
    assert t == dt.datetime(2026, 11, 27, 11, 30, tzinfo=UTC) and t.utcoffset() == dt.timedelta(0)
    assert parse_read_time("2026-11-27t11:30:00z", NOW) == t
    assert parse_read_time("2026-11-27T13:30:00+02:00", NOW) == t
    frac = parse_read_time("2026-11-27T11:30:00.123456Z", NOW)
    assert frac == t + dt.timedelta(microseconds=123456)
    # Older than an hour but within 7 days: allowed (point-in-time recovery), with a warning.
    assert parse_read_time("2026-11-21T12:00:00Z", NOW) == NOW - dt.timedelta(days=6)
    # Without a "now" (option validation) only the syntax is checked.
    assert parse_read_time("2000-01-01T00:00:00Z", None) == dt.datetime(2000, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("text, fragment", [
    ("2026-11-27T11:30:00", "time zone"),
    ("2026-11-27T12:00:01Z", "future"),
    ("2026-11-20T11:59:59Z", "7 days"),
    ("yesterday", "RFC 3339"),
    ("", "RFC 3339"),
])
def test_parse_read_time_rejects(text, fragment):
    with pytest.raises(UsageError, match=fragment):
        parse_read_time(text, NOW)


def test_parse_read_time_naive_rejected_even_without_now():
    with pytest.raises(UsageError, match="time zone"):
        parse_read_time("2026-11-27T11:30:00", None)


def test_a_whole_number_of_at_least_1():
    positive_int = whole_number(1)
    assert positive_int("1") == 1 and positive_int(" 42 ") == 42
    for bad in ("0", "-3", "1.5", "x", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(bad)


def test_positive_float():
    assert positive_float("0.5") == 0.5 and positive_float("30") == 30.0
    for bad in ("0", "-1", "nan", "abc", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_float(bad)


def test_parse_bool():
    for t in ("true", "True", "1", "yes", " TRUE "):
        assert parse_bool(t) is True
    for f in ("false", "False", "0", "no"):
        assert parse_bool(f) is False
    assert parse_bool(True) is True and parse_bool(False) is False
    for bad in ("maybe", "", "2", "on"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_bool(bad)


def test_read_time_option_value():
    assert read_time_value("start") == "start"
    assert read_time_value("2026-11-27T11:30:00Z") == "2026-11-27T11:30:00Z"
    for bad in ("2026-11-27T11:30:00", "noon"):
        with pytest.raises(argparse.ArgumentTypeError):
            read_time_value(bad)


def test_key_value_list_and_name_list():
    assert key_value_list("a=1,b=2") == [("a", "1"), ("b", "2")]
    assert key_value_list(" a = 1 , b=x=y ,") == [("a", "1"), ("b", "x=y")]
    assert key_value_list("empty=") == [("empty", "")]
    assert key_value_list("") == []
    for bad in ("a", "a=1,b", "=1"):
        with pytest.raises(argparse.ArgumentTypeError):
            key_value_list(bad)
    assert name_list("a, b,,__default__") == ["a", "b", "__default__"]


def test_options_parse_through_beam():
    m = PipelineOptions(["--job", "x", "--params", "a=1,b=2", "--params", "c=3", "--shards", "4",
                         "--allow_empty_kind", "--launch_checks=false"]).view_as(MapperOptions)
    assert m.job == "x" and m.params == [[("a", "1"), ("b", "2")], [("c", "3")]]
    assert m.shards == 4 and m.oversampling == 32
    assert m.allow_empty_kind is True and m.launch_checks is False


def test_the_cli_parser_takes_no_abbreviations():
    """Like Beam's own parser: a mistyped --shard is not --shards (nor --job_mod --job_module)."""
    known, unknown = help_parser().parse_known_args(["--shard", "4", "--job_mod=x", "--shards=3"])
    assert known.shards == 3 and known.job_module == []
    assert unknown == ["--shard", "4", "--job_mod=x"]


def test_bounded_numbers_say_what_is_accepted():
    shards = whole_number(1, 10_000)
    assert shards("1") == 1 and shards("10000") == 10_000
    for bad, words in [("0", "from 1 to 10 000"), ("10001", "from 1 to 10 000"),
                       ("1000000000", "from 1 to 10 000"), ("x", "not a whole number")]:
        with pytest.raises(argparse.ArgumentTypeError, match=words):
            shards(bad)
    wait = seconds(3600)
    assert wait("0.5") == 0.5 and wait("3600") == 3600
    for bad in ("0", "-1", "3601", "nan", "inf"):
        with pytest.raises(argparse.ArgumentTypeError, match="above 0 and at most 3600"):
            wait(bad)
    assert seconds(10, zero=True)("0") == 0.0


def test_huge_option_values_are_refused_by_the_parser():
    """Regression: --shards 1000000000 was accepted and crashed inside SplitNamespaces."""
    for argv in (["--shards", "1000000000"], ["--oversampling", "5000"],
                 ["--slice_entities", "2000000000"], ["--datastore_deadline", "0"],
                 ["--max_errors", "-1"]):
        with pytest.raises(SystemExit):
            help_parser().parse_args(argv)
