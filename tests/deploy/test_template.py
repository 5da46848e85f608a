"""The Flex Template launcher (``pipeline/launch/template.py``): it submits and returns, and
refuses what a console user must not do."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from pipeline.launch.template import TemplateRefused, template_argv
from pipeline.launch.template import main as template_main
from tests.support.offline_gcp import DATAFLOW_ARGS, ROOT, fake_gcp_env


@pytest.mark.timeout(90)
def test_template_launcher_submits_and_returns(tmp_path):
    """flex_main.py as the template launcher runs it: no --runner given (it adds Dataflow's),
    --setup_file from FLEX_TEMPLATE_PYTHON_SETUP_FILE; it returns once the job is handed over."""
    env = {k: v for k, v in os.environ.items() if k != "DATASTORE_EMULATOR_HOST"}
    env.update(fake_gcp_env(tmp_path))
    args = [a for a in DATAFLOW_ARGS if not a.startswith("--runner")]
    proc = subprocess.run(
        [sys.executable, "flex_main.py", *args, "--job=count_keys", "--setup_file=./setup.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=80)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "launched on DataflowRunner" in proc.stderr


# --- the template launcher refuses what a console user must not do ------------------------------

@pytest.mark.parametrize("argv, words", [
    (["--job=count_keys", "--job_module=os"], "--job_module is not accepted"),
    (["--job=count_keys", "--job_module", "os"], "--job_module is not accepted"),
    (["--job=count_keys", "--job_mod=os"], "--job_module is not accepted"),
    (["--job=os:system"], "not a registered job name"),
    (["--job=pipeline.api.job:JobSpec"], "not a registered job name"),
    (["--job=CountKeys"], "not a registered job name"),
    (["--job=no_such_job"], "unknown job 'no_such_job'; registered jobs in this template: "),
    ([], "'job' parameter is required"),
])
def test_template_refuses_modules_and_unregistered_jobs(argv, words, capsys):
    with pytest.raises(TemplateRefused, match=re.escape(words)):
        template_argv(argv, environ={})
    assert template_main(argv) == 2
    assert words in capsys.readouterr().err


def test_template_refusal_imports_nothing(tmp_path):
    """In a real process: module:Class and --job_module are refused before any import."""
    marker = tmp_path / "imported"
    (tmp_path / "evil_jobs.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    for argv in (["--job=evil_jobs:Evil"], ["--job=count_keys", "--job_module=evil_jobs"]):
        proc = subprocess.run([sys.executable, str(ROOT / "flex_main.py"), *argv, "--project=p"],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("error: ") and "template" in proc.stderr
        assert not marker.exists(), f"{argv} imported the module"


def test_template_adds_dataflow_runner_baked_modules_and_worker_image(monkeypatch):
    # The launcher starts in a fresh process: forget test jobs that earlier tests registered
    # here, and afterwards the module this test imports (later tests import it themselves).
    from pipeline.api import registry

    fresh = {n: c for n, c in registry._JOBS.items() if "jobs_for_tests" not in c.__module__}
    monkeypatch.setattr(registry, "_JOBS", fresh)
    for mod in [m for m in sys.modules if m.endswith("jobs_for_tests")]:
        monkeypatch.delitem(sys.modules, mod)
    try:
        argv = ["--job=test_range_probe", "--setup_file", "/template/setup.py", "--project=p"]
        with pytest.raises(TemplateRefused):
            template_argv(argv, environ={})
        out = template_argv(argv, environ={"MAPPER_JOBS_MODULES": "tests.support.jobs_for_tests"})
        assert out[0] == "--runner=DataflowRunner" and "/template/setup.py" in out
        image = "us-central1-docker.pkg.dev/p/dataflow/w:1"
        out = template_argv(["--runner=DataflowRunner", "--job=count_keys",
                             "--setup_file=/t/setup.py"], environ={"MAPPER_WORKER_IMAGE": image})
        assert out == ["--runner=DataflowRunner", "--job=count_keys",
                       f"--sdk_container_image={image}"]
    finally:
        sys.modules.pop("tests.support.jobs_for_tests", None)
