"""The job API's parameters: typed getters, and the parameters a job accepts."""
from __future__ import annotations

import datetime as dt

import pytest

from pipeline.api.job import JobSpec, Params
from pipeline.api.registry import job_params
from pipeline.errors import UsageError

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def test_params_typed_getters():
    p = Params({"day": "2026-11-26", "n": "42", "bad_day": "26/11/2026", "bad_n": "4x2"}, NOW)
    assert p.date("day") == dt.date(2026, 11, 26)
    assert p.integer("n") == 42
    assert p.integer("missing", 7) == 7
    assert p.date("missing", dt.date(2020, 1, 1)) == dt.date(2020, 1, 1)
    assert p.text("n") == "42" and p.text("missing", "d") == "d"
    assert dict(p) == {"day": "2026-11-26", "n": "42", "bad_day": "26/11/2026", "bad_n": "4x2"}
    assert len(p) == 4 and p["n"] == "42" and p.now == NOW
    for call, name in [(lambda: p.date("bad_day"), "bad_day"),
                       (lambda: p.integer("bad_n"), "bad_n"),
                       (lambda: p.date("nope"), "nope"), (lambda: p.integer("nope"), "nope"),
                       (lambda: p.text("nope"), "nope")]:
        with pytest.raises(UsageError, match=name):
            call()


class _Job(JobSpec):
    name = "demo_job"
    parameters = {"day": "the day to count", "limit": "how many"}


class _NoParams(JobSpec):
    name = "bare"


def test_job_params_accepts_known_and_rejects_unknown():
    p = job_params([[("day", "2026-01-01")], [("limit", "3"), ("day", "2026-01-02")]], _Job, NOW)
    assert dict(p) == {"day": "2026-01-02", "limit": "3"} and p.now == NOW
    with pytest.raises(UsageError) as e:
        job_params([[("dya", "2026-01-01")]], _Job, NOW)
    msg = str(e.value)
    assert "'dya'" in msg and "demo_job" in msg
    assert "day (the day to count)" in msg and "limit (how many)" in msg
    with pytest.raises(UsageError, match="none"):
        job_params([[("x", "1")]], _NoParams, NOW)


def test_params_flag_is_true_false_or_an_error():
    p = Params({"a": "true", "b": " False ", "c": "maybe"}, NOW)
    assert p.flag("a", False) is True and p.flag("b", True) is False
    assert p.flag("missing", True) is True and p.flag("missing", False) is False
    with pytest.raises(UsageError, match="c='maybe' is not a boolean: use true or false"):
        p.flag("c", False)


@pytest.mark.parametrize("text", ["true", "True", " TRUE ", "yes", "YES", "1", "false", "False",
                                  "no", "0", "maybe", "", "2", "on", "off", "y", "n"])
def test_one_boolean_rule_for_cli_flags_and_job_parameters(text):
    """``--job_file=yes`` and ``by_parent=yes``, ``set_property``'s ``type=bool`` too: the same
    texts are true, false or refused everywhere, and a refusal lists what is accepted."""
    import argparse

    from jobs.migrations import typed_value
    from pipeline.launch.options import parse_bool

    try:
        cli = parse_bool(text)
    except argparse.ArgumentTypeError as e:
        cli = None
        assert "use true or false (also yes/no, 1/0; any case)" in str(e)
    try:
        param = Params({"by_parent": text}, NOW).flag("by_parent", False)
    except UsageError as e:
        param = None
        assert "use true or false (also yes/no, 1/0; any case)" in str(e)
    try:
        value = typed_value(text, "bool")
    except UsageError as e:
        value = None
        assert "true or false (also yes/no, 1/0; any case)" in str(e)
    assert cli == param == value, (text, cli, param, value)
    assert (cli is None) == (text.strip().lower() not in ("true", "false", "yes", "no", "1", "0"))
