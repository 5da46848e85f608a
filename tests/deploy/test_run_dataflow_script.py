"""``run_dataflow.sh`` with python and gcloud stubbed: what it refuses, and the commands it
runs."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import (
    GoogleCloudOptions,
    PipelineOptions,
    SetupOptions,
    WorkerOptions,
)

from pipeline.launch.resolve import MapperOptions
from tests.support.offline_gcp import PARAMS, ROOT

SCRIPT = ROOT / "run_dataflow.sh"

# --- run_dataflow.sh --------------------------------------------------------------------------

SETTING_NAMES = ["PROJECT", "REGION", "TEMP_LOCATION", "JOB", "JOB_PARAMS", "NAMESPACES", "OUTPUT",
                 "DATABASE", "READ_TIME", "SHARDS", "JOB_NAME", "JOB_MODULES", "MAX_WORKERS",
                 "MACHINE_TYPE", "SERVICE_ACCOUNT", "NETWORK", "SUBNETWORK", "NO_PUBLIC_IPS",
                 "WORKER_IMAGE", "TEMPLATE_PATH", "TEMPLATE_IMAGE", "TEMPLATE_JOBS_MODULES", "DRY_RUN"]
STUB = """#!/usr/bin/env bash
n=$(ls "$RECORD_DIR" | wc -l)
{ echo "cwd=$PWD"; printf '%s\\n' "$@"; } > "$RECORD_DIR/call-$(printf %03d "$n")-$(basename "$0")"
"""
RUN = {"PROJECT": "my-project", "REGION": "us-central1", "TEMP_LOCATION": "gs://bucket-name/tmp",
       "JOB": "count_keys"}
BUILD = {"PROJECT": "my-project", "TEMPLATE_PATH": "gs://bucket-name/templates/mapper.json",
         "TEMPLATE_IMAGE": "us-central1-docker.pkg.dev/my-project/dataflow/mapper-template:1"}
RUN_TEMPLATE = {"PROJECT": "my-project", "REGION": "us-central1",
                "TEMPLATE_PATH": "gs://bucket-name/templates/mapper.json", "JOB": "count_keys"}
WORKER = {"PROJECT": "my-project",
          "WORKER_IMAGE": "us-central1-docker.pkg.dev/my-project/dataflow/mapper-worker:1"}


@pytest.fixture
def script(tmp_path):
    """Run run_dataflow.sh with python and gcloud stubbed; returns (run, calls)."""
    bin_dir, record = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    record.mkdir()
    for name in ("python", "gcloud"):
        (bin_dir / name).write_text(STUB)
        (bin_dir / name).chmod(0o755)
    base = {k: v for k, v in os.environ.items() if k not in SETTING_NAMES}
    base.update(PYTHON=str(bin_dir / "python"), GCLOUD=str(bin_dir / "gcloud"),
                RECORD_DIR=str(record))

    def run(*args, **settings):
        return subprocess.run(["bash", str(SCRIPT), *args], env={**base, **settings},
                              cwd=tmp_path, capture_output=True, text=True, timeout=30)

    def calls():
        out = []
        for f in sorted(record.iterdir()):
            lines = f.read_text().splitlines()
            out.append((f.name.rsplit("-", 1)[1], lines[0][4:], lines[1:]))
        return out

    return run, calls


@pytest.mark.parametrize("cmd, settings", [("run", RUN), ("build-template", BUILD),
                                           ("run-template", RUN_TEMPLATE),
                                           ("build-worker-image", WORKER)])
def test_script_refuses_each_missing_setting(script, cmd, settings):
    run, calls = script
    for missing in settings:
        given = {k: v for k, v in settings.items() if k != missing}
        proc = run(cmd, **given)
        assert proc.returncode == 2, (missing, proc.stderr)
        assert f"{missing} is required for '{cmd}'" in proc.stderr
        assert f"e.g. {missing}=" in proc.stderr  # says what it should look like
    assert calls() == []


@pytest.mark.parametrize("setting, value, words", [
    ("TEMP_LOCATION", "bucket-name/tmp", "gs://BUCKET/PATH"),
    ("OUTPUT", "/tmp/out", "gs://BUCKET/PATH"),
    ("PROJECT", "My Project", "project id"),
    ("MAX_WORKERS", "0", "at least 1"),
    ("NO_PUBLIC_IPS", "maybe", "true or false"),
])
def test_script_refuses_malformed_settings(script, setting, value, words):
    run, calls = script
    proc = run("run", **{**RUN, setting: value})
    assert proc.returncode == 2 and setting in proc.stderr and words in proc.stderr, proc.stderr
    proc = run("--bogus", "1", **RUN)
    assert proc.returncode == 2 and "unknown option --bogus" in proc.stderr
    assert calls() == []


def test_script_run_launches_the_cli_on_dataflow(script):
    run, calls = script
    proc = run("--job_params", "kind=Item,by_parent=true", "--namespaces=acme,__default__",
               "--output", "gs://bucket-name/out", "--max-workers", "5", "--no_public_ips",
               "--", "--experiments=use_runner_v2",
               **RUN, MACHINE_TYPE="n2-standard-4", SERVICE_ACCOUNT="mapper@my-project.iam.gserviceaccount.com",
               SUBNETWORK="regions/us-central1/subnetworks/default", DATABASE="my-db",
               JOB_NAME="nightly-count")
    assert proc.returncode == 0, proc.stderr
    ((prog, cwd, args),) = calls()
    assert prog == "python" and Path(cwd) == ROOT  # ./setup.py resolves
    assert args[:3] == ["-m", "pipeline", "--runner=DataflowRunner"]
    i = args.index("--setup_file")
    assert args[i + 1] == "./setup.py"
    assert args[-1] == "--experiments=use_runner_v2"
    # Beam and the CLI read them as meant.
    options = PipelineOptions(args[2:])
    gc, wo, m = (options.view_as(GoogleCloudOptions), options.view_as(WorkerOptions),
                 options.view_as(MapperOptions))
    assert (gc.project, gc.region, gc.temp_location, gc.job_name) == (
        "my-project", "us-central1", "gs://bucket-name/tmp", "nightly-count")
    assert gc.service_account_email == "mapper@my-project.iam.gserviceaccount.com"
    assert (wo.max_num_workers, wo.machine_type, wo.use_public_ips) == (5, "n2-standard-4", False)
    assert wo.subnetwork == "regions/us-central1/subnetworks/default"
    assert options.view_as(SetupOptions).setup_file == "./setup.py"
    assert (m.job, m.params, m.namespaces, m.output, m.database) == (
        "count_keys", [[("kind", "Item"), ("by_parent", "true")]], ["acme", "__default__"],
        "gs://bucket-name/out", "my-db")


def test_script_run_with_a_worker_image_and_a_default_job_name(script):
    run, calls = script
    image = WORKER["WORKER_IMAGE"]
    assert run(**RUN, WORKER_IMAGE=image, JOB_MODULES="myjobs,more.jobs").returncode == 0
    ((_, _, args),) = calls()
    assert f"--sdk_container_image={image}" in args and "--setup_file" not in args
    assert ["--job_module=myjobs", "--job_module=more.jobs"] == [a for a in args if "job_module" in a]
    name = PipelineOptions(args[2:]).view_as(GoogleCloudOptions).job_name
    assert re.fullmatch(r"mapper-count-keys-\d{8}-\d{6}", name)


def test_script_dry_run_prints_and_runs_nothing(script):
    run, calls = script
    proc = run(**RUN, DRY_RUN="1")
    assert proc.returncode == 0 and calls() == []
    assert "-m pipeline --runner=DataflowRunner" in proc.stdout and "--setup_file ./setup.py" in proc.stdout


def test_script_build_template(script):
    run, calls = script
    proc = run("build-template", **BUILD, WORKER_IMAGE=WORKER["WORKER_IMAGE"],
               TEMPLATE_JOBS_MODULES="jobs.team_a,jobs.team_b")
    assert proc.returncode == 0, proc.stderr
    (_, _, submit), (_, _, build) = calls()
    assert submit[:3] == ["builds", "submit", str(ROOT)]
    assert f"--config={ROOT / 'cloudbuild.yaml'}" in submit
    subs = next(a for a in submit if a.startswith("--substitutions="))
    assert subs.startswith("--substitutions=^~^")
    assert dict(kv.split("=", 1) for kv in subs.split("^~^", 1)[1].split("~")) == {
        "_DOCKERFILE": "Dockerfile", "_IMAGE": BUILD["TEMPLATE_IMAGE"],
        "_WORKER_IMAGE": WORKER["WORKER_IMAGE"], "_JOBS_MODULES": "jobs.team_a,jobs.team_b"}
    assert build[:4] == ["dataflow", "flex-template", "build", BUILD["TEMPLATE_PATH"]]
    for flag in (f"--image={BUILD['TEMPLATE_IMAGE']}", "--sdk-language=PYTHON",
                 f"--metadata-file={ROOT / 'metadata.json'}", "--project=my-project"):
        assert flag in build


def test_script_build_worker_image(script):
    run, calls = script
    assert run("build-worker-image", **WORKER).returncode == 0
    ((_, _, submit),) = calls()
    assert "_DOCKERFILE=Dockerfile.worker" in next(a for a in submit if a.startswith("--substitutions="))


def test_script_run_template_passes_template_parameters(script):
    run, calls = script
    proc = run("run-template", "--job_params=kind=Item,by_parent=true", "--namespaces", "a,b",
               "--read_time", "start", **RUN_TEMPLATE, MAX_WORKERS="3", NO_PUBLIC_IPS="true",
               TEMP_LOCATION="gs://bucket-name/tmp")
    assert proc.returncode == 0, proc.stderr
    ((_, _, args),) = calls()
    assert args[:3] == ["dataflow", "flex-template", "run"]
    assert re.fullmatch(r"mapper-count-keys-\d{8}-\d{6}", args[3])
    for flag in ("--region=us-central1", f"--template-file-gcs-location={RUN_TEMPLATE['TEMPLATE_PATH']}",
                 "--max-workers=3", "--disable-public-ips", "--temp-location=gs://bucket-name/tmp"):
        assert flag in args
    raw = next(a for a in args if a.startswith("--parameters=")).split("=", 1)[1]
    assert raw.startswith("^~^")  # gcloud's alternate delimiter: values hold commas
    params = dict(kv.split("=", 1) for kv in raw[3:].split("~"))
    assert params == {"job": "count_keys", "params": "kind=Item,by_parent=true",
                      "namespaces": "a,b", "read_time": "start"}
    for name, value in params.items():  # each is a declared parameter, and passes its regex
        assert all(re.fullmatch(rx, value) for rx in PARAMS[name].get("regexes", [])), name
    proc = run("run-template", **{**RUN_TEMPLATE, "JOB": "myjobs:Job"})
    assert proc.returncode == 2 and "module:Class" in proc.stderr
