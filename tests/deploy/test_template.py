"""The Flex Template launcher (``pipeline/launch/template.py``): it submits and returns, and
refuses, before importing anything, what a console user must not do.

``GOOGLE_ARGV`` is what we assume Google's Python Flex Template launcher passes (its options, the
template's parameters as ``--name=value``, the console's worker fields): nothing here can run
Google's real launcher, so that argv is an assumption, not a recording."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from pipeline.launch.template import (
    DATAFLOW_FLAGS,
    DATAFLOW_OPTIONS,
    INJECTED,
    MAPPER_OPTIONS,
    NOT_IN_TEMPLATE,
    REFUSED,
    TemplateRefused,
    template_argv,
)
from pipeline.launch.template import main as template_main
from tests.support.offline_gcp import DATAFLOW_ARGS, ROOT, fake_gcp_env

SETUP = "/template/setup.py"  # the Dockerfile's FLEX_TEMPLATE_PYTHON_SETUP_FILE
IMAGE = "us-central1-docker.pkg.dev/my-project/dataflow/datastore-mapper-worker:1"
STAGING = "gs://dataflow-staging-us-central1-123456789012"
#: The launcher's environment variables the template reads.
TEMPLATE_ENV = ("FLEX_TEMPLATE_PYTHON_SETUP_FILE", "FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE",
                "MAPPER_WORKER_IMAGE", "MAPPER_JOBS_MODULES")

#: A launch as we assume Google's launcher makes it (no --runner: we add it).
GOOGLE_ARGV = [
    # Google's launcher, from the launch request and FLEX_TEMPLATE_PYTHON_SETUP_FILE
    "--project=my-project", "--region=us-central1", "--job_name=datastore-mapper-20261127",
    f"--template_location={STAGING}/staging/template_launches/2026-11-27_01_02_03-42/job_object",
    f"--temp_location={STAGING}/tmp", f"--staging_location={STAGING}/staging",
    f"--setup_file={SETUP}",
    # the template's parameters
    "--job=count_by_property", "--params=kind=Order,property=status",
    "--namespaces=acme,__default__", "--output=gs://my-bucket/mapper", "--output_mode=replace",
    "--job_file=true", "--read_time=start", "--shards=16", "--launch_checks=true",
    "--dead_letter=gs://my-bucket/mapper/dead.jsonl",
    # the console's optional worker fields
    "--max_num_workers=10", "--num_workers=2", "--worker_machine_type=n2-standard-4",
    "--service_account_email=mapper@my-project.iam.gserviceaccount.com",
    "--subnetwork=regions/us-central1/subnetworks/private", "--no_use_public_ips",
    "--experiments=use_runner_v2", "--labels={\"team\": \"data\"}",
    "--dataflow_kms_key=projects/my-project/locations/us-central1/keyRings/r/cryptoKeys/k",
]


@pytest.fixture
def launcher_env(monkeypatch):
    """os.environ as in the template image (without a worker image or extra job modules)."""
    for name in TEMPLATE_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLEX_TEMPLATE_PYTHON_SETUP_FILE", SETUP)
    return monkeypatch


def beam_parser():
    """Beam 2.77's own parser, as PipelineOptions builds it (MapperOptions included)."""
    from apache_beam.options.pipeline_options import (
        PipelineOptions,
        _BeamArgumentParser,
    )

    import pipeline.launch.resolve  # noqa: F401  (MapperOptions, as the CLI has it)

    parser = _BeamArgumentParser(allow_abbrev=False)
    for cls in {str(c): c for c in PipelineOptions.__subclasses__()}.values():
        cls._add_argparse_args(parser)
    return parser


def beam_actions() -> dict:
    """Option name -> argparse action, in Beam's parser."""
    return {s[2:]: a for a in beam_parser()._actions for s in a.option_strings}


def launch_env(tmp_path, **extra) -> dict:
    """A launcher process's environment, offline: no emulator, the template's variables."""
    env = {k: v for k, v in os.environ.items()
           if k != "DATASTORE_EMULATOR_HOST" and k not in TEMPLATE_ENV}
    return {**env, **fake_gcp_env(tmp_path), **extra}


@pytest.mark.timeout(90)
def test_template_launcher_submits_and_returns(tmp_path):
    """flex_main.py as the template launcher runs it: no --runner given (it adds Dataflow's),
    --setup_file from FLEX_TEMPLATE_PYTHON_SETUP_FILE; it returns once the job is handed over."""
    args = [a for a in DATAFLOW_ARGS if not a.startswith("--runner")]
    proc = subprocess.run(
        [sys.executable, "flex_main.py", *args, "--job=count_keys", "--setup_file=./setup.py"],
        cwd=ROOT, env=launch_env(tmp_path, FLEX_TEMPLATE_PYTHON_SETUP_FILE="./setup.py"),
        capture_output=True, text=True, timeout=80)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "launched on DataflowRunner" in proc.stderr


@pytest.mark.timeout(90)
def test_a_google_launcher_argv_launches(tmp_path):
    """GOOGLE_ARGV through flex_main.py, translated for Dataflow (--dry_run: not submitted).
    Offline, so without what would reach Cloud Storage at launch (--output, the dead letter)
    and without the launch checks; the setup file is this checkout's (Beam builds the sdist)."""
    setup = str(ROOT / "setup.py")
    argv = [f"--setup_file={setup}" if a == f"--setup_file={SETUP}" else a for a in GOOGLE_ARGV
            if not a.startswith(("--output", "--dead_letter"))]
    proc = subprocess.run(
        [sys.executable, "flex_main.py", *argv, "--launch_checks=false", "--dry_run=True"],
        cwd=ROOT, env=launch_env(tmp_path, FLEX_TEMPLATE_PYTHON_SETUP_FILE=setup),
        capture_output=True, text=True, timeout=80)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "launched on DataflowRunner" in proc.stderr


def test_a_google_launcher_argv_is_accepted_as_it_is():
    env = {"FLEX_TEMPLATE_PYTHON_SETUP_FILE": SETUP}
    assert template_argv(GOOGLE_ARGV, environ=env) == ["--runner=DataflowRunner", *GOOGLE_ARGV]
    # With a worker image baked in: the image instead of the setup file.
    out = template_argv(GOOGLE_ARGV, environ={**env, "MAPPER_WORKER_IMAGE": IMAGE})
    assert out == ["--runner=DataflowRunner",
                   *[a for a in GOOGLE_ARGV if a != f"--setup_file={SETUP}"],
                   f"--sdk_container_image={IMAGE}"]


# --- what the template accepts ------------------------------------------------------------------

@pytest.mark.parametrize("extra, env", [
    (["--runner=DataflowRunner"], {}),
    (["--runner", "DataflowRunner", "--runner=DataflowRunner"], {}),
    (["--setup_file", SETUP], {}),
    (["--requirements_file=/template/requirements.txt"],
     {"FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE": "/template/requirements.txt"}),
    ([f"--sdk_container_image={IMAGE}"], {"MAPPER_WORKER_IMAGE": IMAGE}),
    (["--max_num_workers", "20", "--machine_type", "e2-standard-8", "--disk_size_gb=50"], {}),
    (["--use_public_ips", "--network=default", "--worker_zone=us-central1-b"], {}),
    (["--experiments=use_runner_v2,min_num_workers=2", "--experiment", "upload_graph"], {}),
    (["--dataflow_service_options=enable_prime", "--flexrs_goal=COST_OPTIMIZED"], {}),
    (["--label=team=data", "--labels", "cost=1", "--autoscaling_algorithm=NONE"], {}),
    (["--job_file", "--launch_checks", "false", "--allow_empty_kind=true"], {}),
    (["--output", "gs://my-bucket", "--output=gs://b.example.com/a/b/"], {}),
    (["--bigquery_dead_letter=gs://my-bucket/a/b/dead_letter.jsonl"], {}),
    (["--dead_letter", "gs://my-bucket/v1.2/.dead.jsonl"], {}),  # dots, but no '.' segment
    (["--bigquery_table=my-project:mapper.orders_{namespace}", "--bigquery_create=false",
      "--bigquery_write_disposition", "empty", "--max_errors=10"], {}),
    (["--params", "kind=Order", "--params=property=status", "--database=my-db"], {}),
    (["--zone=us-central1-a", "--enable_streaming_engine", "--dry_run=True"], {}),
])
def test_template_accepts(extra, env):
    """Every accepted launch reaches the CLI unchanged (after --runner) and Beam's own parser
    reads it the same way: nothing left over, no option swallowed as another's value."""
    env = {"FLEX_TEMPLATE_PYTHON_SETUP_FILE": SETUP, **env}
    out = template_argv([*GOOGLE_ARGV, *extra], environ=env)
    runner = [] if extra[0].startswith("--runner") else ["--runner=DataflowRunner"]
    expected = [*runner, *GOOGLE_ARGV, *extra]
    if env.get("MAPPER_WORKER_IMAGE"):
        expected.remove(f"--setup_file={SETUP}")
    assert out == expected
    known, unknown = beam_parser().parse_known_args(out)
    assert unknown == [], f"Beam reads {unknown} as unknown"
    assert known.runner == "DataflowRunner" and known.job == "count_by_property"


# --- what the template refuses --------------------------------------------------------------------

@pytest.mark.parametrize("extra, env, words", [
    # another runner: FnApiRunner would run the job inside the launcher
    (["--runner=FnApiRunner"], {}, "--runner=FnApiRunner is not accepted by the template"),
    (["--runner", "DirectRunner"], {}, "--runner=DirectRunner is not accepted"),
    (["--runner=DataflowRunner", "--runner=PrismRunner"], {}, "--runner=PrismRunner is not"),
    (["--runner=apache_beam.runners.dataflow.dataflow_runner.DataflowRunner"], {},
     "only --runner=DataflowRunner is"),
    (["--run=FnApiRunner"], {}, "--run is not an option of the template (abbreviations are not "
                                "options: --runner?)"),
    # another image, other code
    (["--sdk_container_image=evil.example.com/image:1"], {},
     "$MAPPER_WORKER_IMAGE is not set in this template, so no --sdk_container_image is"),
    (["--sdk_container_image=evil.example.com/image:1"], {"MAPPER_WORKER_IMAGE": IMAGE},
     f"only --sdk_container_image={IMAGE} (from $MAPPER_WORKER_IMAGE) is"),
    (["--worker_harness_container_image=evil/image"], {}, "changes the container"),
    (["--sdk_harness_container_image_overrides=.*,evil/image"], {}, "changes the container"),
    (["--extra_package=gs://evil/evil-1.0.tar.gz"], {}, "--extra_package is not accepted"),
    (["--extra_packages", "/tmp/evil.whl"], {}, "--extra_packages is not accepted"),
    (["--extra_pack=/tmp/evil.whl"], {}, "--extra_package is not accepted by the template"),
    (["--setup_file=/tmp/evil/setup.py"], {}, f"only --setup_file={SETUP} (from "
                                              "$FLEX_TEMPLATE_PYTHON_SETUP_FILE) is"),
    (["--setup_file", "./setup.py"], {}, "--setup_file=./setup.py is not accepted"),
    (["--requirements_file=/tmp/requirements.txt"], {},
     "$FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE is not set in this template"),
    (["--requirements_file=/tmp/r.txt"], {"FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE": "/t/r.txt"},
     "only --requirements_file=/t/r.txt"),
    (["--sdk_location=gs://evil/apache-beam.tar.gz"], {}, "--sdk_location is not accepted"),
    (["--beam_plugins=evil.Plugin"], {}, "--beam_plugins is not accepted"),
    (["--files_to_stage=/etc/passwd"], {}, "--files_to_stage is not accepted"),
    (["--pickle_library=dill"], {}, "--pickle_library is not accepted"),
    (["--save_main_session"], {}, "--save_main_session is not accepted"),
    (["--prebuild_sdk_container_engine=cloud_build"], {}, "--prebuild_sdk_container_engine is"),
    (["--environment_type=PROCESS"], {}, "--environment_type is not accepted"),
    (["--environment_config", '{"command": "/bin/sh"}'], {}, "--environment_config is not"),
    (["--dataflow_endpoint=https://evil.example.com"], {}, "another endpoint than Google's"),
    (["--job_endpoint=localhost:8099"], {}, "--job_endpoint is not accepted"),
    (["--s3_endpoint_url=https://evil.example.com"], {}, "--s3_endpoint_url is not accepted"),
    (["--impersonate_service_account=owner@p.iam.gserviceaccount.com"], {}, "identity"),
    (["--experiments=jar_packages=/tmp/evil.jar"], {}, "'jar_packages' names 'jar'"),
    (["--experiments=use_runner_v2,runner_harness_container_image=evil/i"], {},
     "'runner_harness_container_image' names 'image'"),
    (["--dataflow_service_options", "sdk_container_image=evil/i"], {}, "names 'image'"),
    # output and dead letter: Cloud Storage only, no '.' or '..' segment
    (["--output=/tmp/out"], {}, "--output=/tmp/out is not accepted by the template (not a Cloud"),
    (["--output", "../out"], {}, "--output=../out is not accepted"),
    (["--output=gs://my-bucket/a/../../other"], {}, "(it holds '..' or a '.' segment)"),
    (["--output=gs://my-bucket/./a"], {}, "(it holds '..' or a '.' segment)"),
    (["--output=gs://my-bucket/.."], {}, "(it holds '..' or a '.' segment)"),
    (["--output=gs://my-bucket/a/."], {}, "(it holds '..' or a '.' segment)"),
    (["--output=gs://my..bucket/a"], {}, "(it holds '..' or a '.' segment)"),
    (["--output=gs://my-bucket/a..b"], {}, "(it holds '..' or a '.' segment)"),
    (["--output=gs://my-bucket/a\nb"], {}, "--output='gs://my-bucket/a\\nb' is not accepted"),
    (["--job_module\n=os"], {}, "--'job_module\\n' is not an option"),
    (["--output=gs://my-bucket\\a"], {}, "not a Cloud Storage path"),
    (["--output=gs://my-bucket/a\\..\\b"], {}, "backslash"),
    (["--output=s3://my-bucket/x"], {}, "not a Cloud Storage path"),
    (["--output=file:///tmp/x"], {}, "not a Cloud Storage path"),
    (["--output=gs://my-bucket/ok", "--output=/tmp/again"], {}, "--output=/tmp/again"),
    (["--dead_letter=/tmp/dead.jsonl"], {}, "--dead_letter=/tmp/dead.jsonl is not accepted"),
    (["--bigquery_dead_letter=gs://my-bucket/../dead.jsonl"], {}, "'..' or a '.' segment"),
    (["--dead_letter=gs://my-bucket/dir/"], {}, "(not a file)"),
    # the mapper's options that are not template parameters
    (["--job_module=os"], {}, "--job_module is not accepted by the template"),
    (["--job_module", "os"], {}, "--job_module is not accepted by the template"),
    (["--job_mod=os"], {}, "abbreviations are not options), and --job_module is not accepted"),
    (["--list_jobs"], {}, "--list_jobs is not accepted"),
    (["--emulator_host=127.0.0.1:8081"], {}, "--emulator_host is not accepted"),
    (["--bigquery_emulator_host=127.0.0.1:9050"], {}, "--bigquery_emulator_host is not"),
    (["--key_order=utf16"], {}, "--key_order is not accepted"),
    # unknown options, abbreviations, what is not an option
    (["--streaming"], {}, "--streaming is not accepted"),
    (["--no_auth"], {}, "--no_auth is not an option of the template; it accepts the template's "
                        "parameters (job, params,"),
    (["--max_num_work=3"], {}, "(abbreviations are not options: --max_num_workers?)"),
    (["--job-module=os"], {}, "--job-module is not an option of the template"),
    (["--help"], {}, "--help is not an option of the template"),
    (["-h"], {}, "'-h' is not accepted by the template: it takes only options"),
    (["stray"], {}, "'stray' is not accepted by the template"),
    (["--", "--runner=FnApiRunner"], {}, "'--' is not accepted"),
    (["--no_use_public_ips=false"], {}, "--no_use_public_ips takes no value"),
    (["--max_num_workers"], {}, "--max_num_workers needs a value"),
    (["--max_num_workers", "--runner=FnApiRunner"], {}, "--max_num_workers needs a value"),
    (["--labels", "-x"], {}, "--labels needs a value"),
])
def test_template_refuses(extra, env, words, launcher_env, capsys):
    """One line, exit code 2, no traceback, whatever comes before or after."""
    for name, value in env.items():
        launcher_env.setenv(name, value)
    assert template_main([*GOOGLE_ARGV, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert words in err and "Traceback" not in err
    assert template_main([*extra, *GOOGLE_ARGV]) == 2  # first or last, the same
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["--job=count_keys", "--job_module=os"], "--job_module is not accepted"),
    (["--job=count_keys", "--job_module", "os"], "--job_module is not accepted"),
    (["--job=count_keys", "--job_mod=os"], "--job_module is not accepted"),
    (["--job=os:system"], "not a registered job name"),
    (["--job=pipeline.api.job:JobSpec"], "not a registered job name"),
    (["--job=CountKeys"], "not a registered job name"),
    (["--job=no_such_job"], "unknown job 'no_such_job'; registered jobs in this template: "),
    (["--job=count_keys", "--job=os:system"], "job 'os:system' is not a registered job name"),
    ([], "'job' parameter is required"),
])
def test_template_refuses_modules_and_unregistered_jobs(argv, words, launcher_env, capsys):
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


REFUSED_LAUNCHES = [
    ["--job=evil_jobs:Evil"],
    ["--job=count_keys", "--job_module=evil_jobs"],
    ["--job=count_keys", "--job_mod=evil_jobs"],
    ["--job=count_keys", "--runner=FnApiRunner"],
    ["--job=count_keys", "--extra_package=/tmp/evil.tar.gz"],
    ["--job=count_keys", "--sdk_container_image=evil/image"],
    ["--job=count_keys", "--environment_type=PROCESS"],
    ["--job=count_keys", "--beam_plugins=evil_jobs.Plugin"],
    ["--job=count_keys", "--output=../out"],
    ["--job=count_keys", "--experiments=jar_packages=/tmp/evil.jar"],
    ["--job=no_such_job"],  # after the option checks: imports the baked jobs, still no Beam
]


@pytest.mark.timeout(60)
def test_refusals_import_neither_beam_nor_the_module(tmp_path):
    """In a real process, after each refused launch: neither the evil module nor apache_beam
    was imported (the CLI, which imports Beam, is imported only after the checks)."""
    (tmp_path / "evil_jobs.py").write_text("raise SystemExit('evil_jobs was imported')\n")
    code = ("import json, sys\n"
            "from pipeline.launch.template import main\n"
            "out = [['import', 0, 'apache_beam' in sys.modules, 'evil_jobs' in sys.modules]]\n"
            "for argv in json.loads(sys.argv[1]):\n"
            "    rc = main([*argv, '--project=p'])\n"
            "    out.append([argv, rc, 'apache_beam' in sys.modules, 'evil_jobs' in sys.modules])\n"
            "print(json.dumps(out))\n")
    env = launch_env(tmp_path, FLEX_TEMPLATE_PYTHON_SETUP_FILE=SETUP,
                     PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]))
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(REFUSED_LAUNCHES)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=50)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    assert len(results) == len(REFUSED_LAUNCHES) + 1
    for argv, rc, beam, evil in results:
        assert rc in (0, 2) and rc == (0 if argv == "import" else 2), (argv, proc.stderr)
        assert not beam, f"{argv}: apache_beam was imported"
        assert not evil, f"{argv}: evil_jobs was imported"
    assert proc.stderr.count("error: ") == len(REFUSED_LAUNCHES), proc.stderr


def test_template_adds_dataflow_runner_baked_modules_and_worker_image(monkeypatch):
    # The launcher starts in a fresh process: forget test jobs that earlier tests registered
    # here, and afterwards the module this test imports (later tests import it themselves).
    from pipeline.api import registry

    fresh = {n: c for n, c in registry._JOBS.items() if "jobs_for_tests" not in c.__module__}
    monkeypatch.setattr(registry, "_JOBS", fresh)
    for mod in [m for m in sys.modules if m.endswith("jobs_for_tests")]:
        monkeypatch.delitem(sys.modules, mod)
    setup = {"FLEX_TEMPLATE_PYTHON_SETUP_FILE": SETUP}
    try:
        argv = ["--job=test_range_probe", "--setup_file", SETUP, "--project=p"]
        with pytest.raises(TemplateRefused, match="unknown job 'test_range_probe'"):
            template_argv(argv, environ=setup)
        out = template_argv(argv, environ={**setup,
                                           "MAPPER_JOBS_MODULES": "tests.support.jobs_for_tests"})
        assert out[0] == "--runner=DataflowRunner" and SETUP in out
        out = template_argv(
            ["--runner=DataflowRunner", "--job=count_keys", f"--setup_file={SETUP}"],
            environ={**setup, "MAPPER_WORKER_IMAGE": IMAGE})
        assert out == ["--runner=DataflowRunner", "--job=count_keys",
                       f"--sdk_container_image={IMAGE}"]
    finally:
        sys.modules.pop("tests.support.jobs_for_tests", None)


# --- the lists, against Beam's own options and the image ------------------------------------------

def test_the_lists_are_beams_own_options():
    """Each accepted, injected or refused Dataflow option is a Beam 2.77 option, the accepted
    ones with the arity the launcher assumes; an alias goes with its option (no accepted alias
    of a refused option); the mapper's options read the same in Beam's parser as in ours."""
    actions = beam_actions()
    for name in (*DATAFLOW_OPTIONS, *INJECTED, *REFUSED):
        assert name in actions, f"--{name} is not a Beam option (stale list?)"
    for name in DATAFLOW_OPTIONS:
        assert (actions[name].nargs == 0) == (name in DATAFLOW_FLAGS), name
        assert actions[name].nargs in (0, None), name  # a value is one argument, or none
    by_dest: dict = {}
    for name, action in actions.items():
        by_dest.setdefault(action.dest, set()).add(name)
    for name in DATAFLOW_OPTIONS:
        assert by_dest[actions[name].dest] <= set(DATAFLOW_OPTIONS), name
    for name in INJECTED:
        assert by_dest[actions[name].dest] == {name}, name
    for name in REFUSED:
        assert not by_dest[actions[name].dest] & set(DATAFLOW_OPTIONS), name
    for name, action in MAPPER_OPTIONS.items():
        assert (actions[name].dest, actions[name].nargs) == (action.dest, action.nargs), name
    assert not set(DATAFLOW_OPTIONS) & (set(INJECTED) | set(REFUSED) | set(MAPPER_OPTIONS))
    assert not set(REFUSED) & set(INJECTED)
    assert set(NOT_IN_TEMPLATE).isdisjoint(a.dest for a in MAPPER_OPTIONS.values())


def test_the_image_injects_only_what_the_template_accepts():
    """The launcher image sets FLEX_TEMPLATE_PYTHON_SETUP_FILE (injected as --setup_file, which
    the template accepts exactly) and none of the variables that would make Google's launcher
    pass --requirements_file or --extra_packages, which it would refuse."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert f'FLEX_TEMPLATE_PYTHON_SETUP_FILE="{SETUP}"' in text
    for name in ("FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE", "FLEX_TEMPLATE_PYTHON_EXTRA_PACKAGES",
                 "FLEX_TEMPLATE_PYTHON_PY_OPTIONS"):
        assert name not in text


# --- locations: Cloud Storage only (issue 22, point 8) --------------------------------------------

@pytest.mark.parametrize("extra, words", [
    (["--temp_location=/tmp/t"], "--temp_location=/tmp/t is not accepted by the template (not a "
                                 "Cloud Storage path): use a Cloud Storage directory gs://BUCKET"),
    (["--temp_location", "tmp"], "--temp_location=tmp is not accepted"),
    (["--staging_location=/tmp/staging"], "--staging_location=/tmp/staging is not accepted by the "
                                          "template (not a Cloud Storage path)"),
    (["--staging_location=file:///tmp/staging"], "--staging_location=file:///tmp/staging is not"),
    (["--template_location=/tmp/job_object"], "--template_location=/tmp/job_object is not "
                                              "accepted by the template (not a Cloud Storage"),
    (["--template_location=gs://my-bucket/dir/"], "--template_location=gs://my-bucket/dir/ is not "
                                                  "accepted by the template (not a file)"),
    (["--temp_location=gs://my-bucket/../tmp"], "(it holds '..' or a '.' segment)"),
])
def test_template_refuses_local_locations(extra, words, launcher_env, capsys):
    assert template_main([*GOOGLE_ARGV, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert words in err and "Traceback" not in err


RESTORE = [a for a in GOOGLE_ARGV if not a.startswith(("--job=", "--params="))]


@pytest.mark.parametrize("params, words", [
    (["--params=from=/tmp/undo"], "--params from=/tmp/undo (job restore_entities's from) is "
                                  "not accepted by the template (not a Cloud Storage path): use "
                                  "a Cloud Storage path gs://BUCKET/PATH"),
    (["--params", "from=undo"], "--params from=undo (job restore_entities's from)"),
    (["--params=from=gs://my-bucket/runs/r/undo", "--params=from=./undo"],
     "--params from=./undo"),
    (["--params=from=gs://my-bucket/a\\,b/../undo"], "(it holds '..' or a '.' segment)"),
    (["--params=from=file:///tmp/undo"], "not a Cloud Storage path"),
])
def test_template_refuses_a_local_restore_source(params, words, launcher_env, capsys):
    assert template_main([*RESTORE, "--job=restore_entities", *params]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert words in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["--job=restore_entities", "--params=from=gs://my-bucket/set_property/runs/r1/undo"],
    ["--job=restore_entities", "--params=from=gs://my-bucket/a\\,b/backup_entities/namespaces"],
    ["--job=rename_property", "--params=from=category,to=section"],  # not a path: a property
])
def test_template_accepts_cloud_storage_sources_and_other_jobs_from(argv):
    env = {"FLEX_TEMPLATE_PYTHON_SETUP_FILE": SETUP}
    assert template_argv([*RESTORE, *argv], environ=env) == \
        ["--runner=DataflowRunner", *RESTORE, *argv]
