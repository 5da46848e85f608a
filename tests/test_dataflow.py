"""Offline checks of the Dataflow launch, the Flex Template and the packaging (issue 7).

Nothing here reaches Google Cloud: DataflowRunner runs with Beam's ``--dry_run=True``
(translate, stage locally, do not submit), with fake credentials and an unreachable
metadata server so that nothing can wait on either; gcloud and python are stubbed for
run_dataflow.sh. What stays unverified without a project and Docker is listed in the
README's "Run on Dataflow" section.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.internal import pickler
from apache_beam.options.pipeline_options import (GoogleCloudOptions, PipelineOptions,
                                                  SetupOptions, WorkerOptions)
from apache_beam.portability.api import beam_runner_api_pb2

import pipeline.launch
import pipeline.run
from pipeline.cli import help_parser
from pipeline.options import MapperOptions
from pipeline.template import TemplateRefused, main as template_main, template_argv
from pipeline.transforms import RangeRestrictions, ReadRangeFn

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "run_dataflow.sh"
METADATA = json.loads((ROOT / "metadata.json").read_text(encoding="utf-8"))
PARAMS = {p["name"]: p for p in METADATA["parameters"]}

DATAFLOW_ARGS = ["--runner=DataflowRunner", "--project=my-project", "--region=us-central1",
                 "--temp_location=gs://bucket-name/tmp", "--dry_run=True", "--launch_checks=false"]

#: MapperOptions a console user does not get, and why.
NOT_IN_TEMPLATE = {
    "list_jobs": "prints the registry and exits: a command-line aid, launches nothing",
    "job_module": "would make the launcher import an arbitrary module; the template image's "
                  "jobs are fixed when it is built (MAPPER_JOBS_MODULES)",
    "emulator_host": "the Datastore emulator is for local runs and tests, not Dataflow",
    "key_order": "auto picks Datastore's (utf8) order on Dataflow; utf16 is the emulator's",
    "progress_seconds": "how often workers log progress: a debugging knob",
    "bigquery_emulator_host": "the BigQuery emulator is for local runs and tests, not Dataflow",
    "query_entities": "how wide each query's key range is: an emulator-speed knob",
}


def fake_gcp_env(tmp_path: Path) -> dict:
    """Credentials that parse but reach nothing, and no metadata server to wait for."""
    creds = tmp_path / "fake-credentials.json"
    creds.write_text(json.dumps({"type": "authorized_user", "client_id": "x.apps.googleusercontent.com",
                                 "client_secret": "x", "refresh_token": "x"}))
    return {"GOOGLE_APPLICATION_CREDENTIALS": str(creds), "NO_GCE_CHECK": "true",
            "GCE_METADATA_HOST": "127.0.0.1:1", "GCE_METADATA_IP": "127.0.0.1:1",
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}


@pytest.fixture
def offline_gcp(tmp_path, monkeypatch):
    for k, v in fake_gcp_env(tmp_path).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DATASTORE_EMULATOR_HOST", raising=False)


def dry_run(args):
    """Build the mapper with DataflowRunner options and translate it (no submission)."""
    options = PipelineOptions(args)
    plan = pipeline.launch.make_plan(options)
    p = beam.Pipeline(options=options)
    pipeline.run.build(p, plan)
    result = p.run()
    return plan, p.runner.proto_pipeline, result


def transforms_by_name(proto):
    return {t.unique_name: t for t in proto.components.transforms.values()}


# --- the Dataflow path translates --------------------------------------------------------------

@pytest.mark.timeout(90)
def test_dataflow_dry_run_translates_the_mapper_and_stages_our_sdist(offline_gcp, tmp_path):
    """DataflowRunner translates the whole graph offline; the splittable DoFn and the plan go
    to the workers pickled, and --setup_file makes Beam's own stager build our sdist."""
    plan, proto, result = dry_run(DATAFLOW_ARGS + [
        "--job=count_keys", "--params=by_parent=true", "--output=gs://bucket-name/out",
        f"--setup_file={ROOT / 'setup.py'}"])
    assert result.state == "DONE" and result.job is not None  # dry run: translated, not sent

    t = transforms_by_name(proto)
    for name in ["Mapper/ExpandNamespaces", "Mapper/ReshuffleNamespaces", "Mapper/SplitNamespaces",
                 "Mapper/ReshuffleRanges", "Mapper/ReadRanges", "Mapper/AllStats",
                 "Mapper/RangeTotals", "Mapper/NamespaceTotals", "Mapper/JobTotals",
                 "Mapper/Summary", "Mapper/WriteFiles/NamespaceFiles/WriteShards",
                 "Mapper/WriteFiles/NamespaceFiles/Compose", "Mapper/TotalsWithFiles",
                 "Mapper/NamespaceCompleted"]:
        assert name in t, f"{name} missing from the Dataflow graph"
    assert t["Mapper/RangeTotals"].spec.urn == "beam:transform:combine_per_key:v1"

    # ReadRanges is a splittable DoFn (it has a restriction coder), fed by ReshuffleRanges.
    read = t["Mapper/ReadRanges/ParDo(ReadRangeFn)"]
    assert read.spec.urn == "beam:transform:pardo:v1"
    payload = beam_runner_api_pb2.ParDoPayload.FromString(read.spec.payload)
    assert payload.restriction_coder_id, "ReadRangeFn is not translated as a splittable DoFn"
    assert set(read.inputs.values()) <= set(t["Mapper/ReshuffleRanges"].outputs.values())

    # The DoFn as the workers will get it: unpickled from the graph, with the plan inside.
    fn = pickler.loads(payload.do_fn.payload)[0]
    assert isinstance(fn, ReadRangeFn)
    assert fn.plan.job_name == "count_keys" and fn.plan.project == "my-project"
    assert fn.plan.params.text("by_parent") == "true"
    assert fn.plan.summary_path == "gs://bucket-name/out/count_keys/summary.json"

    # Workers run Beam 2.77's container and pip-install the sdist Beam built from setup.py.
    (env,) = proto.components.environments.values()
    docker = beam_runner_api_pb2.DockerPayload.FromString(env.payload)
    assert docker.container_image.endswith(f"beam_python{sys.version_info[0]}.{sys.version_info[1]}"
                                           f"_sdk:{beam.__version__}")
    staged = {}
    for dep in env.dependencies:
        name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dep.role_payload).staged_name
        staged[name] = beam_runner_api_pb2.ArtifactFilePayload.FromString(dep.type_payload).path
    assert "workflow.tar.gz" in staged, staged
    with tarfile.open(staged["workflow.tar.gz"]) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    assert {"pipeline/__init__.py", "pipeline/transforms.py", "jobs/__init__.py"} <= members


@pytest.mark.timeout(60)
def test_dataflow_dry_run_with_a_worker_image_stages_no_package(offline_gcp):
    """With our packages preinstalled in the worker image, no sdist is staged (a staged one
    would be pip-installed on each worker, which needs PyPI)."""
    image = "us-central1-docker.pkg.dev/my-project/dataflow/datastore-mapper-worker:1"
    _, proto, _ = dry_run(DATAFLOW_ARGS + ["--job=count_keys", f"--sdk_container_image={image}"])
    (env,) = proto.components.environments.values()
    assert beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image == image
    names = {beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(d.role_payload).staged_name
             for d in env.dependencies}
    assert "workflow.tar.gz" not in names


def test_plan_job_and_read_fn_pickle_cleanly(offline_gcp):
    options = PipelineOptions(DATAFLOW_ARGS + ["--job=created_between",
                                               "--params=from=2026-11-01,to=2026-11-02",
                                               "--read_time=start"])
    plan = pipeline.launch.make_plan(options)
    back = pickler.loads(pickler.dumps(plan))
    assert (back.job_name, back.project, back.read_time, back.query) == (
        plan.job_name, plan.project, plan.read_time, plan.query)
    assert type(back.job) is type(plan.job)
    assert dict(back.params) == dict(plan.params)
    job = pickler.loads(pickler.dumps(plan.job))
    assert type(job) is type(plan.job)
    fn = pickler.loads(pickler.dumps(ReadRangeFn(plan)))
    assert isinstance(fn, ReadRangeFn) and fn.plan.job_name == "created_between"
    assert isinstance(pickler.loads(pickler.dumps(RangeRestrictions())), RangeRestrictions)


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
    (["--job=pipeline.job:JobSpec"], "not a registered job name"),
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
    # The launcher starts in a fresh process: forget test jobs that earlier tests registered here.
    from pipeline import registry

    fresh = {n: c for n, c in registry._JOBS.items() if "jobs_for_tests" not in c.__module__}
    monkeypatch.setattr(registry, "_JOBS", fresh)
    for mod in [m for m in sys.modules if m.endswith("jobs_for_tests")]:
        monkeypatch.delitem(sys.modules, mod)
    argv = ["--job=test_range_probe", "--setup_file", "/template/setup.py", "--project=p"]
    with pytest.raises(TemplateRefused):
        template_argv(argv, environ={})
    out = template_argv(argv, environ={"MAPPER_JOBS_MODULES": "tests.jobs_for_tests"})
    assert out[0] == "--runner=DataflowRunner" and "/template/setup.py" in out
    image = "us-central1-docker.pkg.dev/p/dataflow/w:1"
    out = template_argv(["--runner=DataflowRunner", "--job=count_keys", "--setup_file=/t/setup.py"],
                        environ={"MAPPER_WORKER_IMAGE": image})
    assert out == ["--runner=DataflowRunner", "--job=count_keys", f"--sdk_container_image={image}"]


# --- metadata.json ----------------------------------------------------------------------------

def mapper_option_dests() -> set:
    parser = argparse.ArgumentParser()
    MapperOptions._add_argparse_args(parser)
    return {a.dest for a in parser._actions if a.dest != "help"}


def test_metadata_has_the_documented_fields():
    assert set(METADATA) == {"name", "description", "parameters"}
    assert METADATA["name"] and METADATA["description"]
    assert len(PARAMS) == len(METADATA["parameters"]), "duplicate parameter names"
    for p in METADATA["parameters"]:
        assert set(p) <= {"name", "label", "helpText", "isOptional", "regexes"}, p
        assert {"name", "label", "helpText", "isOptional"} <= set(p), p
        assert isinstance(p["isOptional"], bool)
        assert p["label"].strip() and len(p["helpText"]) > 20
        for rx in p.get("regexes", []):
            assert rx.startswith("^") and rx.endswith("$"), rx
            re.compile(rx)
    assert PARAMS["job"]["isOptional"] is False
    assert all(p["isOptional"] for p in METADATA["parameters"] if p["name"] != "job")


def test_metadata_and_the_cli_parser_match_both_ways():
    dests = mapper_option_dests()
    assert set(PARAMS) <= dests, f"declared but unknown to the CLI: {set(PARAMS) - dests}"
    assert set(NOT_IN_TEMPLATE) <= dests, "stale exclusion"
    missing = dests - set(PARAMS) - set(NOT_IN_TEMPLATE)
    assert not missing, f"options a console user needs but the template lacks: {missing}"
    assert not set(PARAMS) & set(NOT_IN_TEMPLATE)
    # The help parser of `python -m pipeline` knows each as --name.
    help_text = help_parser().format_help()
    for name in PARAMS:
        assert f"--{name}" in help_text


SAMPLES = {  # name: (values the console accepts, values it refuses)
    "job": (["count_keys", "export_keys", "a1_b"], ["", "count-keys", "Count", "jobs:X", "a b", "os.path:x"]),
    "params": (["kind=Order", "kind=Order,property=status", "from=2026-11-01,to=2026-11-02", "q=a=b"],
               ["kind", "=x", "kind=Order,", ",kind=Order", "a=1,,b=2"]),
    "namespaces": (["acme", "acme,__default__", "a.b-c_d"], ["", "a,,b", "a b", ",a"]),
    "shards": (["1", "8", "64"], ["0", "-1", "1.5", "x", "08"]),
    "oversampling": (["32"], ["0", "x"]),
    "slice_entities": (["2000"], ["0", "2e3"]),
    "slice_seconds": (["30", "2.5", "0.5", ".25", "1.0"], ["0", "0.0", "-1", "x", "1e3", "."]),
    "max_counters": (["1000"], ["0", ""]),
    "output": (["gs://my-bucket/mapper", "gs://my-bucket", "gs://b.example.com/a/b/"],
               ["my-bucket/x", "gs://", "gs://B/x", "/tmp/out", "s3://b/x"]),
    "database": (["my-db", "db1x"], ["My-db", "-db", "db-", "ab", "(default)"]),
    "read_time": (["start", "2026-11-27T12:00:00Z", "2026-11-27T12:00:00.5+01:00", "2026-11-27T12:00Z"],
                  ["yesterday", "2026-11-27", "2026-11-27T12:00:00", "Start"]),
    "allow_empty_kind": (["true", "false"], ["yes", "True", "1", ""]),
    "launch_checks": (["true", "false"], ["no", ""]),
    "output_mode": (["refuse", "replace"], ["", "Replace", "overwrite"]),
    "job_file": (["true", "false"], ["yes", ""]),
    "bigquery_table": (["my-proj:ds.t", "example.com:my-proj:ds.t", "my-proj.ds.t", "ds.t",
                        "ds_1.T-x_9", "ds.t_{namespace}", "p:ds.{namespace}", "p.ds.{namespace}-rows",
                        "ds." + "t" * 1024, "ds." + "a" * 511 + "{namespace}" + "b" * 511],
                       ["", "t", "a.b.c.d", "p:ds", "p:ds.t.x", "ds-1.t", "d s.t", "ds.t t", " ds.t",
                        "ds.té", "ds.t{namespace}{namespace}", "ds.{name}", "ds.{NAMESPACE}",
                        "P:ds.t", "1p:ds.t", "p-:ds.t", "example.com:p.ds.t", ":ds.t", ".ds.t",
                        "ds.", ".t", "p:{namespace}.t", "ds." + "t" * 1025]),
    "bigquery_create": (["true", "false"], ["yes", "True", ""]),
    "bigquery_write_disposition": (["append", "empty"], ["", "Append", "truncate", "WRITE_APPEND"]),
    "bigquery_dead_letter": (["gs://my-bucket/dead.jsonl", "gs://my-bucket/a/b/dead_letter.jsonl"],
                             ["gs://my-bucket", "gs://my-bucket/", "gs://my-bucket/dir/",
                              "/tmp/dead.jsonl", "dead.jsonl", "s3://b/x", "gs://B/x"]),
    "bigquery_max_bad_rows": (["0", "10", "1000"], ["-1", "x", "1.5", "", "01"]),
    "bigquery_schema_sample": (["1", "1000"], ["0", "-1", "x", "1e3", ""]),
    "bigquery_deadline": (["120", "0.5", "2.5", ".25"], ["0", "0.0", "-1", "x", "1e3", ""]),
}


def test_metadata_regexes_accept_good_values_and_reject_bad_ones():
    assert set(SAMPLES) == set(PARAMS), "every declared parameter gets samples"
    for name, (good, bad) in SAMPLES.items():
        rxs = PARAMS[name].get("regexes", [])
        assert rxs, f"{name} has no regex"
        for v in good:
            assert all(re.fullmatch(rx, v) for rx in rxs), f"{name}: {v!r} refused"
        for v in bad:
            assert not all(re.fullmatch(rx, v) for rx in rxs), f"{name}: {v!r} accepted"


def test_values_the_console_accepts_are_accepted_by_the_cli():
    """A value that passes the template's regex reaches the CLI as --name=value: it must parse
    there too (with the same meaning), or the launch fails late on the launcher VM."""
    for name, (good, _) in SAMPLES.items():
        for v in good:
            opts = PipelineOptions([f"--{name}={v}"]).view_as(MapperOptions)
            assert getattr(opts, name) not in (None, []), (name, v)
    opts = PipelineOptions(["--launch_checks=false", "--allow_empty_kind=true", "--shards=3",
                            "--slice_seconds=.25", "--params=a=1,b=2", "--namespaces=x,__default__",
                            "--output=gs://b-1/o", "--database=my-db"]).view_as(MapperOptions)
    assert (opts.launch_checks, opts.allow_empty_kind, opts.shards, opts.slice_seconds) == (
        False, True, 3, 0.25)
    assert opts.params == [[("a", "1"), ("b", "2")]] and opts.namespaces == ["x", "__default__"]


@pytest.mark.timeout(90)
@pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud is not installed")
def test_gcloud_accepts_the_metadata_file(tmp_path):
    """gcloud's own parser of the template spec (offline: --print-only writes nothing)."""
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), **fake_gcp_env(tmp_path)}
    proc = subprocess.run(
        ["gcloud", "dataflow", "flex-template", "build", "gs://bucket-name/t.json",
         "--image=gcr.io/my-project/t:1", "--sdk-language=PYTHON",
         f"--metadata-file={ROOT / 'metadata.json'}", "--print-only", "--project=my-project"],
        env=env, capture_output=True, text=True, timeout=80)
    assert proc.returncode == 0, proc.stderr[-2000:]
    spec = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert [p["name"] for p in spec["metadata"]["parameters"]] == list(PARAMS)
    assert spec["sdkInfo"]["language"] == "PYTHON"


# --- images -----------------------------------------------------------------------------------

def dockerfile(name):
    text = (ROOT / name).read_text(encoding="utf-8")
    return text, re.sub(r"\\\n", " ", text)


def test_dockerfiles_copy_what_exists_and_point_at_the_launcher():
    text, joined = dockerfile("Dockerfile")
    assert re.search(r"^FROM gcr\.io/dataflow-templates-base/python311-template-launcher-base\b",
                     text, re.M)
    py_file = re.search(r'FLEX_TEMPLATE_PYTHON_PY_FILE="/template/([^"]+)"', text).group(1)
    setup_file = re.search(r'FLEX_TEMPLATE_PYTHON_SETUP_FILE="/template/([^"]+)"', text).group(1)
    assert (py_file, setup_file) == ("flex_main.py", "setup.py")
    ignored = [line.strip().rstrip("/") for line in
               (ROOT / ".gcloudignore").read_text().splitlines() if line and not line.startswith("#")]
    for name in ("Dockerfile", "Dockerfile.worker"):
        _, joined = dockerfile(name)
        for m in re.finditer(r"^COPY (.+) \S+$", joined, re.M):
            for src in m.group(1).split():
                assert (ROOT / src).exists(), f"{name} copies missing {src}"
                assert src not in ignored, f"{name} copies {src}, which .gcloudignore leaves out"
    # The launcher and the workers run one Python and the Beam version requirements.txt pins
    # (Beam rejects a pipeline pickled by one Python on another).
    worker, _ = dockerfile("Dockerfile.worker")
    launcher_py = re.search(r"python(\d)(\d+)-template-launcher-base", text).groups()
    assert f"FROM apache/beam_python{'.'.join(launcher_py)}_sdk:{beam.__version__}" in worker
    assert f"apache-beam[gcp]=={beam.__version__}" in (ROOT / "requirements.txt").read_text()


# --- the sdist --------------------------------------------------------------------------------

@pytest.mark.timeout(180)
def test_sdist_contains_our_packages_and_installs_in_a_clean_venv(tmp_path):
    """Build the sdist from a copy of the sources (the work tree stays untouched), then install
    it with --no-deps into a new venv made --without-pip (fast) by this interpreter's pip
    (`pip --python`). Beam and the other dependencies come from this interpreter's
    site-packages through a .pth line, which sys.path puts after the new venv's own
    site-packages, so `import pipeline` must find the installed copy; the check runs in an
    empty directory with no PYTHONPATH. The build backend (setuptools with bdist_wheel) comes
    from this interpreter when it has one offline, else through pip's build isolation from
    the configured package index, as for .ci/run's own install."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in ("pipeline", "jobs"):
        shutil.copytree(ROOT / d, src / d, ignore=ignore)
    for f in ("setup.py", "README.md"):
        shutil.copy(ROOT / f, src / f)
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path / "dist")],
                   cwd=src, check=True, capture_output=True, timeout=120)
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    expected = {str(p.relative_to(ROOT)) for d in ("pipeline", "jobs")
                for p in (ROOT / d).glob("*.py")}
    assert expected <= members, f"missing from the sdist: {expected - members}"

    venv_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv_dir)], check=True,
                   timeout=60)
    vpy = venv_dir / "bin" / "python"
    purelib = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "zz_beam_from_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    offline_backend = importlib.util.find_spec("wheel") is not None or _setuptools_has_bdist_wheel()
    cmd = [sys.executable, "-m", "pip", "--python", str(vpy), "install", "--quiet", "--no-deps",
           "--disable-pip-version-check", str(sdist)]
    if offline_backend:
        cmd[-1:-1] = ["--no-build-isolation", "--no-index"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    empty = tmp_path / "empty"
    empty.mkdir()
    out = subprocess.run(
        [str(vpy), "-c", "import pipeline, jobs, pipeline.template, pipeline.registry as r; "
         "print(pipeline.__file__); print(jobs.__file__); print(','.join(r.known_jobs()))"],
        cwd=empty, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    pipeline_file, jobs_file, registered = out.stdout.split()
    assert pipeline_file.startswith(purelib) and jobs_file.startswith(purelib)
    assert "count_keys" in registered.split(",")


def _setuptools_has_bdist_wheel() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    version = tuple(int(x) for x in re.findall(r"\d+", setuptools.__version__)[:2])
    return version >= (70, 1)


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
