"""Unknown options are refused with the closest name; every Beam option, the mapper's own and
what the Flex Template launcher injects are still accepted."""
from __future__ import annotations

import pytest

import pipeline.launch.launcher  # noqa: F401  (every options class a run defines: MapperOptions)
from pipeline.errors import UsageError
from pipeline.launch import template
from pipeline.launch.options import (
    BEAM_OPTIONS_FILE,
    beam_parser,
    beam_table,
    beam_table_text,
    check_known_options,
    closest,
    known_table,
    mapper_table,
    option_names,
    table_of,
    unknown_arguments,
)


@pytest.mark.parametrize("argv, message", [
    (["--shard", "4"], "unknown option --shard; did you mean --shards?"),
    (["--shard=4"], "unknown option --shard; did you mean --shards?"),
    (["--job_mod", "x"], "unknown option --job_mod; did you mean --job_module?"),
    (["--temp_locaton=gs://b/t"], "did you mean --temp_location?"),
    (["--zzzz"], "unknown option --zzzz (--help"),
    (["stray"], "unexpected argument 'stray'"),
])
def test_unknown_options_are_refused_with_the_closest_name(argv, message):
    with pytest.raises(UsageError, match=message.replace("?", r"\?").replace("(", r"\(")):
        check_known_options(["--job", "count_keys", *argv])


def test_every_option_beam_the_mapper_and_the_template_launcher_know_is_accepted():
    names = option_names()
    assert "--shards" in names and "--runner" in names and "--dry_run" in names
    parser = beam_parser()
    checked = 0
    for action in parser._actions:
        for name in (s for s in action.option_strings if s.startswith("--") and s != "--help"):
            value = None if action.nargs == 0 else str((action.choices or ["1"])[0])
            argv = [name] if value is None else [f"{name}={value}"]
            try:
                _, unknown = parser.parse_known_args(argv + ["--nope"])
            except (SystemExit, Exception):  # a value of another type (JSON, say): known name
                continue
            assert unknown == ["--nope"], (argv, unknown)
            checked += 1
    assert checked > 150, checked
    for dest in [*template.DATAFLOW_OPTIONS, *template.INJECTED]:
        if dest in template.DATAFLOW_FLAGS:
            tries = [[f"--{dest}"]]
        else:
            tries = [[f"--{dest}={v}"] for v in ("x", "1", "COST_OPTIMIZED", "NONE")]
        results = [unknown_arguments(t + ["--nope"]) for t in tries]
        assert ["--nope"] in results, (dest, results)


def test_closest_is_none_when_nothing_is_close():
    assert closest("--qqqq", ["--shards", "--project"]) is None


def test_the_table_of_option_names_is_what_beams_parser_has():
    """The CLI refuses unknown options from a table, without importing Beam: it must be
    exactly the installed Beam's (regenerate: python -m pipeline.launch.options --write)."""
    parsed = table_of(beam_parser())
    assert known_table() == parsed  # Beam's and the mapper's: every option a run knows
    table = beam_table()
    assert table == {k: v for k, v in parsed.items() if k not in mapper_table()}, (
        "pipeline/launch/beam_options.json is not the installed Beam's: regenerate it with "
        "python -m pipeline.launch.options --write")
    assert not set(table) & set(mapper_table())  # a mapper option needs no regenerating
    assert BEAM_OPTIONS_FILE.read_text(encoding="utf-8") == beam_table_text(), (
        "pipeline/launch/beam_options.json: regenerate it with python -m pipeline.launch.options "
        "--write")


def test_refusals_from_the_command_line_import_no_beam():
    """--help, --list_jobs and what the command line alone refuses answer without Beam."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from pipeline.launch.cli import main\n"
            "for argv in (['--list_jobs'], ['--job', 'count_keys', '--shard', '4'],\n"
            "             ['--job', 'nosuch', '--project', 'p'],\n"
            "             ['--job', 'count_keys', '--project', 'p', '--params', 'x=1'],\n"
            "             ['--job', 'count_keys']):\n"
            "    assert main(argv) in (0, 2), argv\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('apache_beam', 'grpc')\n"
            "               or m.startswith(('google.cloud.', 'google.api_core')))\n"
            "print('HEAVY', ','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": "/tmp"})
    assert out.returncode == 0, out.stderr
    heavy = out.stdout.split("HEAVY", 1)[1].strip()
    assert heavy == "", heavy
    assert "unknown option --shard; did you mean --shards?" in out.stderr
    assert "unknown job 'nosuch'" in out.stderr
    assert "has no parameter 'x'" in out.stderr
    assert "--project is required" in out.stderr
