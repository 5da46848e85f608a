"""The ``datastore-mapper`` console script's dispatch (the installed script itself is run by
tests/deploy/test_packaging.py and tests/emulator/test_command.py), and the project's default
on the emulator."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from devtools.emulator import default_data_dir
from pipeline.errors import UsageError
from pipeline.launch import cli
from pipeline.launch.resolve import resolve

ROOT = Path(__file__).resolve().parents[2]


def test_tools_and_runs_are_dispatched(monkeypatch):
    calls = []
    import devtools.emulator
    import devtools.seed

    monkeypatch.setattr(devtools.emulator, "_main", lambda a, prog: calls.append(("emu", a, prog)) or 3)
    monkeypatch.setattr(devtools.seed, "main", lambda a, prog: calls.append(("seed", a, prog)) or 4)
    monkeypatch.setattr(cli, "main",
                        lambda a, prog=None: calls.append(("run", a))
                        or (5 if prog == "datastore-mapper" else 6))  # the program named
    assert cli.console_main(["emulator"]) == 3
    assert cli.console_main(["emulator", "--port", "0"]) == 3
    assert cli.console_main(["emulator", "check"]) == 3
    assert cli.console_main(["emulator", "--help"]) == 3
    assert cli.console_main(["seed", "--small"]) == 4
    assert cli.console_main(["--job", "count_keys"]) == 5
    assert calls == [
        ("emu", ["start"], "datastore-mapper emulator"),
        ("emu", ["start", "--port", "0"], "datastore-mapper emulator"),
        ("emu", ["check"], "datastore-mapper emulator"),
        ("emu", ["--help"], "datastore-mapper emulator"),
        ("seed", ["--small"], "datastore-mapper seed"),
        ("run", ["--job", "count_keys"])]


def test_the_command_module_is_light():
    """Starting the command (for the emulator, say) imports neither Beam nor a Google client
    (``google`` and ``google.cloud`` themselves are namespace packages site's .pth files make)."""
    code = ("import sys, pipeline.launch.cli; print(sorted(m for m in sys.modules if m.startswith("
            "('apache_beam', 'google.cloud.', 'google.api_core', 'grpc'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_default_data_dir_is_per_project_under_the_data_home(tmp_path):
    assert default_data_dir("p", {"XDG_DATA_HOME": str(tmp_path)}) == \
        tmp_path / "datastore-mapper" / "emulator" / "p"
    assert str(default_data_dir("p", {})).endswith("/.local/share/datastore-mapper/emulator/p")


def test_on_the_emulator_the_project_defaults_to_datastore_project_id(monkeypatch):
    monkeypatch.setenv("DATASTORE_PROJECT_ID", "from-env")
    run = resolve(PipelineOptions(["--job", "count_keys", "--emulator_host", "127.0.0.1:1"]))
    assert run.read.target.project == "from-env"
    run = resolve(PipelineOptions(["--job", "count_keys", "--emulator_host", "127.0.0.1:1",
                                   "--project", "given"]))
    assert run.read.target.project == "given"
    monkeypatch.delenv("DATASTORE_EMULATOR_HOST", raising=False)
    with pytest.raises(UsageError, match="--project is required"):  # not without the emulator
        resolve(PipelineOptions(["--job", "count_keys"]))


def test_the_program_name_a_run_was_given_does_not_outlive_it(monkeypatch):
    """``main(prog="datastore-mapper")`` names that program in what the run prints; a later
    command built in the same process (a test's, say) guesses from argv again."""
    from pipeline.launch import cli
    from pipeline.launch.options import cli_name

    seen = []
    monkeypatch.setattr(cli, "_main", lambda argv: seen.append(cli_name()) or 0)
    monkeypatch.setattr(sys, "argv", ["pytest"])
    assert cli.main(["--list_jobs"], prog="datastore-mapper") == 0
    assert seen == ["datastore-mapper"] and cli_name() == "python -m pipeline"
