"""Bad input stops the run with a clear message, a non-zero exit code and no traceback.

The catalogue (``CATALOGUE``) runs every case through the real CLI (``python -m pipeline``, or
``flex_main.py`` for the template's) in a subprocess, and checks for each:

- the exit code: 2 when the launch is refused (bad input, unreachable services), 1 when the run
  started and failed (a record that cannot be written);
- exactly one line on stderr starting with ``error:``, holding the case's fragments (what was
  wrong and what is accepted); no "Traceback" in stdout or stderr;
- nothing under a final name: a refused launch leaves the test's directory (its ``--output``
  included) exactly as it was, not even a lease or an empty directory, and nothing in its
  ``TMPDIR``; a failed run leaves no namespace file, only its dead letters, and nothing in its
  ``TMPDIR`` either;
- how long it took, well within its 60 s time-out (recorded, not asserted: the durations are
  printed at the end of the module, and written as JSON to ``$BAD_INPUT_DURATIONS`` if set).

Cases that need Datastore run against the emulator; the others get ``NO_DATASTORE``, a closed
port, so a case that wrongly reaches Datastore fails (at once: a refused connection is not
retried) instead of passing. The missing-index case runs in-process with the client's error
injected: the emulator never asks for composite indexes.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

import pytest
from google.api_core import exceptions as gexc
from google.cloud import datastore

from devtools.seed import NamespaceSpec, seed_dataset
from pipeline.core.keyorder import format_path, path_from_flat
from pipeline.launch.logs import EXIT_FAILED, EXIT_REFUSED
from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS, run_mapper

ROOT = Path(__file__).resolve().parents[2]
JOB_MODULE = ["--job_module", "tests.support.jobs_failing"]
#: Nothing listens here: a case that should fail before touching Datastore fails fast if it does.
NO_DATASTORE = {"DATASTORE_EMULATOR_HOST": "127.0.0.1:9"}
#: Every catalogue case gets this long; they take seconds.
CASE_TIMEOUT = 60.0
#: case id -> seconds, from launch to exit (printed at the end of the module).
DURATIONS: dict[str, float] = {}


def cli(args, env_extra, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, encoding="utf-8", timeout=timeout)


def assert_clean_failure(r: subprocess.CompletedProcess, *expected: str) -> str:
    """Non-zero exit, no traceback anywhere, and every expected fragment in stderr."""
    detail = f"exit {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
    assert r.returncode != 0, detail
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, detail
    for fragment in expected:
        assert fragment in r.stderr, f"{fragment!r} not in stderr\n{detail}"
    return r.stderr


@pytest.fixture
def seeded(emulator):
    """A little data in two namespaces: {namespace: [flat key paths]}."""
    return seed_dataset(TEST_PROJECT, [NamespaceSpec("", 30), NamespaceSpec("acme", 20)])


# --- the catalogue ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad input. ``args`` and ``env`` values may hold ``{out}`` (the run's --output,
    ``TMP/out``, absent unless ``setup`` makes it), ``{tmp}`` (the test's directory) and, for
    Datastore cases, ``{name}`` and ``{key}`` (a named key of namespace acme, and its path as
    messages print it); ``expect`` too."""

    id: str
    args: tuple
    expect: tuple  # fragments of the one "error:" line
    code: int = EXIT_REFUSED
    datastore: bool = False  # needs the emulator, seeded
    env: dict = dataclasses.field(default_factory=dict)  # None: unset
    output: bool = True  # add --output {out}
    script: str = "pipeline"  # or flex_main.py
    setup: Optional[Callable[[Path, dict], None]] = None
    xfail: Optional[str] = None  # today's behaviour is wrong: why (strict)
    skip_unless: Optional[Callable[[Path], Optional[str]]] = None  # returns a skip reason


def job(name: str = "count_keys", *more: str) -> tuple:
    return ("--job", name, "--project", TEST_PROJECT, *more)


def failing(name: str, *more: str) -> tuple:
    return job(name, *JOB_MODULE, *more)


def _utc(delta: dt.timedelta) -> str:
    return (dt.datetime.now(dt.timezone.utc) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def _module(name: str, source: str) -> Callable[[Path, dict], None]:
    def setup(tmp: Path, env: dict) -> None:
        (tmp / "modules").mkdir(exist_ok=True)
        (tmp / "modules" / f"{name}.py").write_text(source, encoding="utf-8")
    return setup


MODULES_ENV = {"PYTHONPATH": "{tmp}/modules" + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _a_file(tmp: Path, env: dict) -> None:
    (tmp / "file.txt").write_text("not a directory\n", encoding="utf-8")


def _job_dir_a_file(tmp: Path, env: dict) -> None:
    """OUTPUT/JOB is a file: the job's directory cannot be made."""
    (tmp / "o").mkdir()
    (tmp / "o" / "count_keys").write_text("not a directory\n", encoding="utf-8")


def _read_only_dir(tmp: Path, env: dict) -> None:
    (tmp / "ro").mkdir()
    (tmp / "ro").chmod(0o500)


def _root_can_write(tmp: Path) -> Optional[str]:
    probe = tmp / "probe-ro"
    probe.mkdir()
    probe.chmod(0o500)
    try:
        if os.access(probe, os.W_OK):
            return ("this user (root?) can write into a 0500 directory: a directory without "
                    "write permission cannot be made; output-under-a-file covers the refusal")
        return None
    finally:
        probe.chmod(0o700)
        probe.rmdir()


def _complete_output(tmp: Path, env: dict) -> None:
    """OUTPUT/count_keys holds a complete run's output."""
    job_dir = tmp / "out" / "count_keys"
    (job_dir / "namespaces").mkdir(parents=True)
    (job_dir / "namespaces" / "acme.jsonl").write_text("", encoding="utf-8")
    (job_dir / "summary.json").write_text(json.dumps(
        {"status": "succeeded", "run_id": "r1",
         "files": ["namespaces/acme.jsonl", "summary.json"]}), encoding="utf-8")


def _live_lease(tmp: Path, env: dict) -> None:
    """OUTPUT/count_keys is being written by a live local run (this test's own process)."""
    from pipeline.sinks.files import lease

    job_dir = tmp / "out" / "count_keys"
    job_dir.mkdir(parents=True)
    lease.take(str(tmp / "out"), "count_keys", "live-run", local=True)


def _failed_run_with_manifests(tmp: Path, env: dict) -> None:
    """A run of record_hooks that failed in job_completed: every namespace completed (its file
    and manifest written), the run failed after."""
    (tmp / "setup-tmp").mkdir()
    r = cli(["--job", "record_hooks", "--job_module", "tests.support.jobs_hooks",
             "--project", TEST_PROJECT, "--params", f"events={tmp}/events.jsonl",
             "--params", "fail_in=job_completed", "--output", str(tmp / "out"), *IN_PROCESS],
            {**env, "TMPDIR": str(tmp / "setup-tmp")}, timeout=CASE_TIMEOUT)
    assert r.returncode == EXIT_FAILED, r.stderr
    manifests = list((tmp / "out" / "record_hooks" / "manifests").glob("*.json"))
    assert len(manifests) == 2, (r.stderr, manifests)


CATALOGUE = [
    # --- options ------------------------------------------------------------------------------
    Case("options-shards-0", job("count_keys", "--shards", "0"),
         ("argument --shards", "0 is not allowed", "use a number from 1 to 10 000")),
    Case("options-shards-1000000000", job("count_keys", "--shards", "1000000000"),
         ("argument --shards", "1000000000 is not allowed", "use a number from 1 to 10 000")),
    Case("options-shards-abc", job("count_keys", "--shards", "abc"),
         ("argument --shards", "'abc' is not a whole number")),
    Case("options-oversampling-5000", job("count_keys", "--oversampling", "5000"),
         ("argument --oversampling", "5000 is not allowed", "use a number from 1 to 1 000")),
    Case("options-samples-over-100000", job("count_keys", "--shards", "10000",
                                            "--oversampling", "11"),
         ("--shards 10000 x --oversampling 11 = 110000", "at most 100000", "lower one")),
    Case("options-slice_seconds-negative", job("count_keys", "--slice_seconds", "-1"),
         ("argument --slice_seconds", "-1.0 is not allowed", "above 0 and at most 3600")),
    Case("options-slice_seconds-7200", job("count_keys", "--slice_seconds", "7200"),
         ("argument --slice_seconds", "7200.0 is not allowed", "above 0 and at most 3600")),
    Case("options-read_time-yesterday", job("count_keys", "--read_time", "yesterday"),
         ("--read_time 'yesterday' is not an RFC 3339 time", "2026-11-27T12:00:00Z", "'start'")),
    Case("options-read_time-future", job("count_keys", "--read_time", _utc(dt.timedelta(days=1))),
         ("--read_time", "is in the future", "use a past time", "'start'")),
    Case("options-read_time-8-days-ago", job("count_keys", "--read_time",
                                             _utc(-dt.timedelta(days=8))),
         ("--read_time", "is more than 7 days ago", "1 hour (7 days with point-in-time recovery)")),
    Case("options-read_time-no-time-zone", job("count_keys", "--read_time", "2026-11-30T12:00:00"),
         ("--read_time '2026-11-30T12:00:00' needs a time zone", "trailing Z for UTC")),
    Case("options-allow_empty_kind-maybe", job("count_keys", "--allow_empty_kind=maybe"),
         ("argument --allow_empty_kind", "'maybe' is not a boolean",
          "use true or false (also yes/no, 1/0; any case)")),
    Case("options-params-novalue", job("count_keys", "--params", "novalue"),
         ("argument --params", "'novalue' is not NAME=VALUE")),
    Case("options-datastore_deadline-0", job("count_keys", "--datastore_deadline", "0"),
         ("argument --datastore_deadline", "0.0 is not allowed", "above 0 and at most 86400")),
    Case("options-max_errors-negative", job("count_keys", "--max_errors", "-1"),
         ("argument --max_errors", "-1 is not allowed", "from 0 to 1 000 000 000")),
    Case("options-max_errors-without-output", job("count_keys", "--max_errors", "5"),
         ("--max_errors 5 needs a place for the entities that fail", "pass --output",
          "--dead_letter=FILE"), output=False),
    Case("options-output_mode-bogus", job("count_keys", "--output_mode", "bogus"),
         ("argument --output_mode", "invalid choice: 'bogus'", "'refuse', 'replace', 'resume'")),
    Case("options-key_order-latin1", job("count_keys", "--key_order", "latin1"),
         ("argument --key_order", "invalid choice: 'latin1'", "'utf8', 'utf16'")),
    Case("options-bigquery_table-four-parts", job("count_keys", "--bigquery_table", "a.b.c.d"),
         ("argument --bigquery_table", "'a.b.c.d' is not a table", "DATASET.TABLE")),
    Case("options-missing-project", ("--job", "count_keys"),
         ("--project is required", "any id works with the emulator"),
         env={"GOOGLE_CLOUD_PROJECT": "", "DATASTORE_PROJECT_ID": ""}),
    Case("options-missing-job", ("--project", TEST_PROJECT),
         ("--job is required", "--list_jobs shows the registered jobs")),
    Case("options-beam-direct_num_workers-abc", job("count_keys", "--direct_num_workers=abc"),
         ("argument --direct_num_workers", "invalid int value: 'abc'")),
    Case("options-beam-two-local-workers", job("count_keys", "--direct_num_workers=2"),
         ("--direct_num_workers=2 is not supported", "losing data", "--runner=DataflowRunner")),
    Case("options-beam-multi-processing", job("count_keys", "--runner=FnApiRunner",
                                              "--direct_running_mode=multi_processing"),
         ("--direct_running_mode=multi_processing is not supported", "in_memory",
          "lose or corrupt data")),
    Case("options-beam-multi-threading", job("count_keys", "--direct_running_mode=multi_threading"),
         ("--direct_running_mode=multi_threading is not supported",)),
    Case("options-runner-unknown", job("count_keys", "--runner=NoSuchRunner"),
         ("--runner NoSuchRunner", "Unexpected pipeline runner", "Valid values are",
          "DataflowRunner")),
    Case("options-unknown-option-shard", job("count_keys", "--shard", "4"),
         ("unknown option --shard; did you mean --shards?", "no abbreviations")),
    Case("options-abbreviated-job_module", job("count_keys", "--job_mod=x"),
         ("unknown option --job_mod; did you mean --job_module?",)),
    Case("options-stray-argument", job("count_keys", "count_by_property"),
         ("unexpected argument 'count_by_property'", "--name=value")),
    # --- the job's parameters -----------------------------------------------------------------
    Case("params-unknown", job("count_keys", "--params", "colour=red"),
         ("job count_keys has no parameter 'colour'", "it accepts:", "kind", "by_parent")),
    Case("params-bad-date", job("created_between", "--params", "from=2026-13-01"),
         ("job parameter from='2026-13-01' is not a date (YYYY-MM-DD)",)),
    Case("params-by_parent-maybe", job("count_keys", "--params", "by_parent=maybe"),
         ("job parameter by_parent='maybe' is not a boolean",
          "use true or false (also yes/no, 1/0; any case)")),
    # --- job modules and jobs -------------------------------------------------------------------
    Case("module-missing", job("count_keys", "--job_module", "no_such_module_xyz"),
         ("cannot import job module 'no_such_module_xyz'", "No module named 'no_such_module_xyz'")),
    Case("module-raises-at-import", job("count_keys", "--job_module", "badjobs_raises"),
         ("cannot import job module 'badjobs_raises'",
          "RuntimeError: BILLING_DB is not set"),
         setup=_module("badjobs_raises", "raise RuntimeError('BILLING_DB is not set')\n"),
         env=MODULES_ENV),
    Case("module-syntax-error", job("count_keys", "--job_module", "badjobs_syntax"),
         ("cannot import job module 'badjobs_syntax'", "SyntaxError:", "badjobs_syntax.py, line 3"),
         setup=_module("badjobs_syntax", "from pipeline import JobSpec\n\ndef next(self, ctx:\n"),
         env=MODULES_ENV),
    Case("module-missing-dependency", job("count_keys", "--job_module", "badjobs_dependency"),
         ("cannot import job module 'badjobs_dependency'", "No module named 'billing_client'"),
         setup=_module("badjobs_dependency", "import billing_client\n"), env=MODULES_ENV),
    Case("job-unknown", job("no_such_job"),
         ("unknown job 'no_such_job'", "registered jobs:", "count_keys", "count_by_property",
          "created_between", "export_keys", "--job_module")),
    Case("job-module-class-missing", job("tests.support.jobs_failing:NoSuchClass"),
         ("tests.support.jobs_failing has no JobSpec class 'NoSuchClass'",
          "its JobSpec classes:", "BadRecord", "FailOnEntity")),
    Case("job-module-class-module-missing", job("no_such_module_xyz:Thing"),
         ("cannot import job module 'no_such_module_xyz'",)),
    Case("job-query-raises", failing("query_fails"),
         ("job query_fails: query() failed: KeyError: 'kind'",)),
    # --- queries --------------------------------------------------------------------------------
    Case("query-two-inequalities", failing("two_inequalities"),
         ("inequality filters on more than one property (n, score)",
          "only one property may have inequalities")),
    Case("query-metadata-kind", job("count_keys", "--params", "kind=__kind__"),
         ("kind '__kind__' is a Datastore metadata kind, not an entity kind",)),
    Case("query-unsupported-operator", failing("unsupported_operator"),
         ("filter n != 3: operator '!=' is not supported", "use one of =, <, <=, >, >=")),
    # --- namespaces and kinds (the launch checks) ------------------------------------------------
    Case("namespaces-unknown", job("count_keys", "--namespaces", "nosuch"),
         ("namespace(s) not found: nosuch", "namespaces with entities: __default__, acme"),
         datastore=True),
    Case("kind-without-entities", job("count_keys", "--params", "kind=Nope"),
         ("kind 'Nope' has no entities", "kinds found: Item, Parent", "--allow_empty_kind=true"),
         datastore=True),
    # --- outputs --------------------------------------------------------------------------------
    Case("records-without-a-sink", job("export_keys"), output=False,
         expect=("job export_keys yields records, and this run has nowhere to put them",
                 "--output DIR", "--bigquery_table", "--discard_records")),
    Case("records-discarded-and-streamed",
         job("export_keys", "--discard_records", "--bigquery_table", "ds.t"), output=False,
         expect=("--discard_records and --bigquery_table contradict each other",)),
    Case("output-an-existing-file", job("count_keys", "--output", "{tmp}/file.txt"),
         ("--output {tmp}/file.txt is a file, not a directory",), output=False, datastore=True,
         setup=_a_file),
    Case("output-under-a-file", job("count_keys", "--output", "{tmp}/file.txt/sub"),
         ("--output {tmp}/file.txt/sub is not writable", "{tmp}/file.txt is a file, not a "
          "directory"), output=False, datastore=True, setup=_a_file),
    Case("output-in-proc", job("count_keys", "--output", "/proc/datastore-mapper-nope"),
         ("--output /proc/datastore-mapper-nope is not writable",
          "cannot create /proc/datastore-mapper-nope", "No such file or directory",
          "the file system there takes no new files"), output=False, datastore=True),
    Case("output-job-directory-is-a-file", job("count_keys", "--output", "{tmp}/o"),
         ("--output {tmp}/o is not writable", "cannot create {tmp}/o/count_keys",
          "a file is in the way where a directory goes"), output=False, datastore=True,
         setup=_job_dir_a_file),
    Case("output-read-only-directory", job("count_keys", "--output", "{tmp}/ro/out"),
         ("--output {tmp}/ro/out is not writable",), output=False, datastore=True,
         setup=_read_only_dir, skip_unless=_root_can_write),
    Case("output-s3", job("count_keys", "--output", "s3://x"),
         ("--output s3://x: use a local directory or gs://BUCKET/PATH",), output=False,
         datastore=True),
    Case("output-holds-a-complete-run", job("count_keys"),
         ("{out}/count_keys already holds output of a previous run",
          "pass --output_mode=replace", "or choose another --output"),
         datastore=True, setup=_complete_output),
    Case("output-held-by-a-live-run", job("count_keys", "--output_mode", "replace"),
         ("{out}/count_keys is being written by another run", "live-run",
          "is still running on this host", "wait for it, or choose another --output"),
         datastore=True, setup=_live_lease),
    # --- services -------------------------------------------------------------------------------
    # A refused connection is a misconfiguration: not retried, whatever the deadline.
    Case("services-datastore-closed-port", job("count_keys"),
         ("the Datastore emulator at 127.0.0.1:9 is unreachable (not retried",
          "connection refused", "--emulator_host / DATASTORE_EMULATOR_HOST")),
    Case("services-datastore-unknown-host", job("count_keys", "--emulator_host",
                                                "no-such-host.invalid:8081"),
         ("the Datastore emulator at no-such-host.invalid:8081 is unreachable (not retried",
          "unknown host", "--emulator_host / DATASTORE_EMULATOR_HOST")),
    Case("services-no-credentials", job("count_keys"),
         ("no usable Google Cloud credentials to reach Datastore (project test-project)",
          "/nonexistent/credentials.json was not found", "gcloud auth application-default login",
          "--emulator_host"),
         env={"DATASTORE_EMULATOR_HOST": None,
              "GOOGLE_APPLICATION_CREDENTIALS": "/nonexistent/credentials.json",
              "NO_GCE_CHECK": "true", "GCE_METADATA_HOST": "127.0.0.1:1",
              "CLOUDSDK_CONFIG": "{tmp}/no-gcloud-config"}),
    Case("services-bigquery-closed-port", job("stream_entities", "--bigquery_table", "ds.t",
                                              "--bigquery_emulator_host", "127.0.0.1:9"),
         ("BigQuery at 127.0.0.1:9 is unreachable (connection refused, not retried",),
         datastore=True),
    # --- the template's launcher ----------------------------------------------------------------
    Case("template-job_module", ("--job=count_keys", "--job_module=jobs"),
         ("--job_module is not accepted by the template", "only the job modules built into"),
         script="flex_main.py", output=False),
    Case("template-runner-FnApiRunner", ("--job=count_keys", "--runner=FnApiRunner"),
         ("--runner=FnApiRunner is not accepted by the template", "only --runner=DataflowRunner"),
         script="flex_main.py", output=False),
    Case("template-output-local", ("--job=count_keys", "--output=/tmp/x"),
         ("--output=/tmp/x is not accepted by the template (not a Cloud Storage path)",
          "gs://BUCKET[/PATH]"), script="flex_main.py", output=False),
    Case("template-output-dotdot", ("--job=count_keys", "--output=gs://b/../x"),
         ("--output=gs://b/../x is not accepted by the template", "'..'", "gs://BUCKET[/PATH]"),
         script="flex_main.py", output=False),
    # --- records the job yields (the run starts, and fails: exit 1) -----------------------------
    Case("records-object", failing("bad_record", "--params", "value=object,on={name}"),
         ("job bad_record failed on entity {key} in namespace acme", "RecordError",
          "a value of type object", "cannot be written as JSON", "dead letters:",
          "{out}/bad_record/dead_letter.jsonl"), code=EXIT_FAILED, datastore=True),
    Case("records-mixed-set", failing("bad_record", "--params", "value=mixed_set,on={name}"),
         ("job bad_record failed on entity {key} in namespace acme", "RecordError",
          "a set of values that do not sort", "{out}/bad_record/dead_letter.jsonl"),
         code=EXIT_FAILED, datastore=True),
    Case("records-nan", failing("bad_record", "--params", "value=nan,on={name}"),
         ("job bad_record failed on entity {key} in namespace acme", "RecordError",
          "cannot be written as JSON", "Out of range float values",
          "{out}/bad_record/dead_letter.jsonl"), code=EXIT_FAILED, datastore=True),
    # --- resume ---------------------------------------------------------------------------------
    Case("resume-other-params",
         ("--job", "record_hooks", "--job_module", "tests.support.jobs_hooks", "--project",
          TEST_PROJECT, "--params", "events={tmp}/other-events.jsonl", "--output_mode",
          "resume"),
         ("--output_mode=resume:", "manifests", "was written by a run with another params",
          "resume only the same job, parameters and query, or use --output_mode=replace"),
         datastore=True, setup=_failed_run_with_manifests),
]

assert len({c.id for c in CATALOGUE}) == len(CATALOGUE), "case ids must be unique"


def _params(datastore: bool):
    return [pytest.param(c, id=c.id, marks=[pytest.mark.xfail(strict=True, reason=c.xfail)]
                         if c.xfail else []) for c in CATALOGUE if c.datastore == datastore]


def _tree(top: Path, skip: set) -> dict:
    """Every file and directory below ``top`` (but ``skip``): path -> a digest or "dir"."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip]
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), top)] = "dir"
        for f in filenames:
            path = os.path.join(dirpath, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, top)] = hashlib.sha1(fh.read()).hexdigest()
    return out


def run_case(case: Case, tmp_path: Path, env_base: dict, seeded: Optional[dict] = None):
    if case.skip_unless is not None:
        reason = case.skip_unless(tmp_path)
        if reason:
            pytest.skip(reason)
    out, tmpdir = tmp_path / "out", tmp_path / "tmpdir"
    tmpdir.mkdir()
    values = {"tmp": str(tmp_path), "out": str(out)}
    if seeded is not None:
        named = [flat for flat in seeded["acme"] if len(flat) == 2 and isinstance(flat[1], str)]
        bad = named[len(named) // 2]
        values.update(name=bad[1], key=format_path(path_from_flat(bad)))
    fill = lambda text: text.format(**values)  # noqa: E731
    env = {**os.environ, **env_base, "PYTHONIOENCODING": "utf-8", "PYTHONDONTWRITEBYTECODE": "1",
           "TMPDIR": str(tmpdir)}
    for name, value in case.env.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = fill(value)
    if case.setup is not None:
        case.setup(tmp_path, env_base)
    args = [fill(a) for a in case.args] + (["--output", str(out)] if case.output else [])
    command = ([sys.executable, "-m", "pipeline"] if case.script == "pipeline"
               else [sys.executable, str(ROOT / case.script)])
    before = _tree(tmp_path, {str(tmpdir)})
    started = time.monotonic()
    r = subprocess.run([*command, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                       encoding="utf-8", timeout=CASE_TIMEOUT)
    DURATIONS[case.id] = time.monotonic() - started

    detail = (f"{case.id}: exit {r.returncode} after {DURATIONS[case.id]:.1f} s\n--- stdout\n"
              f"{r.stdout}\n--- stderr\n{r.stderr}")
    assert r.returncode == case.code, detail
    assert "Traceback" not in r.stdout and "Traceback" not in r.stderr, detail
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, detail
    for fragment in map(fill, case.expect):
        assert fragment in errors[0], f"{fragment!r} not in the error line\n{detail}"

    after = _tree(tmp_path, {str(tmpdir)})
    if case.code == EXIT_REFUSED:  # nothing changed: no lease, no empty directory, no file
        assert after == before, f"the refused launch changed {tmp_path}\n{detail}"
        assert not any(tmpdir.iterdir()), (list(tmpdir.iterdir()), detail)
    else:  # the run failed: its dead letters and its record of them, nothing under a final name
        new = {p for p in after if p not in before and after[p] != "dir"}
        job_name = case.args[1]
        assert new == {f"out/{job_name}/dead_letter.jsonl", f"out/{job_name}/.lease.json"}, (
            new, detail)
        with open(out / job_name / ".lease.json", encoding="utf-8") as f:
            record = json.load(f)
        assert record["status"] == "failed" and record["files"] == ["dead_letter.jsonl"], record
        with open(out / job_name / "dead_letter.jsonl", encoding="utf-8") as f:
            letters = [json.loads(line) for line in f]
        assert [(d["source"], d["namespace"], d["key"][-1], d["error"]) for d in letters] == [
            ("record", "acme", values["name"], "RecordError")], letters
        # the failed run's private directory removed (its workers' log kept in the cache)
        assert not any(tmpdir.iterdir()), (list(tmpdir.iterdir()), detail)
    return r


@pytest.fixture(scope="module", autouse=True)
def report_durations(request):
    """At the end of the module: each case's time from launch to exit."""
    yield
    if not DURATIONS:
        return
    lines = [f"bad-input catalogue: {len(DURATIONS)} cases run, each given {CASE_TIMEOUT:.0f} s"]
    lines += [f"  {seconds:5.1f} s  {case}" for case, seconds in DURATIONS.items()]
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        for line in lines:
            reporter.write_line(line)
    path = os.environ.get("BAD_INPUT_DURATIONS")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(DURATIONS, f, indent=1)


@pytest.mark.parametrize("case", _params(datastore=False))
def test_refused_without_datastore(case, tmp_path):
    env = case.env if "DATASTORE_EMULATOR_HOST" in case.env else {**NO_DATASTORE, **case.env}
    run_case(dataclasses.replace(case, env=env), tmp_path, NO_DATASTORE)


@pytest.mark.parametrize("case", _params(datastore=True))
def test_bad_input_against_the_emulator(case, tmp_path, emulator, seeded):
    run_case(case, tmp_path, emulator.env(), seeded)


def test_the_catalogue_is_complete():
    """The issue asks for at least 30 cases, across these areas."""
    assert len(CATALOGUE) >= 30
    areas = {c.id.split("-")[0] for c in CATALOGUE}
    assert {"options", "params", "module", "job", "query", "namespaces", "kind", "output",
            "services", "template", "records", "resume"} <= areas


# --- beyond the catalogue -------------------------------------------------------------------


def test_kind_without_entities_runs_when_allowed(emulator, seeded, tmp_path):
    r = cli(["--job", "count_keys", "--project", TEST_PROJECT, "--params", "kind=Nope",
             "--allow_empty_kind=true", "--output", str(tmp_path), *IN_PROCESS], emulator.env())
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    with open(tmp_path / "count_keys" / "summary.json", encoding="utf-8") as f:
        summary = json.load(f)
    assert summary["totals"]["entities"] == 0
    assert set(summary["namespaces"]) == {"__default__", "acme"}


def test_missing_composite_index_prints_index_yaml(emulator, seeded, monkeypatch):
    """Production refuses an equality + range query without a composite index; the
    emulator never does, so the launch probe's query gets the client's error injected."""
    real_fetch = datastore.Query.fetch
    probed = []

    def fetch(q, **kw):
        if q.filters:  # the probe of the read query (the kind check has no filters)
            probed.append(q)
            raise gexc.FailedPrecondition(
                "no matching index found. recommended index is:\n- kind: Item\n  properties:\n"
                "  - name: category\n  - name: created\n")
        return real_fetch(q, **kw)

    monkeypatch.setattr(datastore.Query, "fetch", fetch)
    r = run_mapper("category_created_between", JOB_MODULE)
    assert probed, "the launch probe did not run"
    assert r.code != 0
    assert "Traceback" not in r.stderr
    assert "needs a composite index" in r.stderr, r.stderr
    assert ("indexes:\n- kind: Item\n  properties:\n  - name: category\n  - name: created\n"
            in r.stderr), r.stderr
    assert "gcloud datastore indexes create index.yaml" in r.stderr


# --- a failure inside the job, on a worker ----------------------------------------------------


@pytest.mark.parametrize("runner", [
    [],  # the CLI's default: FnApiRunner in this process
], ids=["default-in-process"])
def test_job_failing_on_one_entity_names_job_key_and_namespace(emulator, seeded, runner,
                                                               tmp_path):
    named = [flat for flat in seeded["acme"] if len(flat) == 2 and isinstance(flat[1], str)]
    bad = named[len(named) // 2]
    r = cli(["--job", "fail_on_entity", *JOB_MODULE, "--project", TEST_PROJECT,
             "--params", f"fail_on={bad[1]}", *runner],
            {**emulator.env(), "TMPDIR": str(tmp_path)})  # its kept run directory goes there
    expected = ["job fail_on_entity failed on entity", format_path(path_from_flat(bad)),
                "in namespace acme", f"ValueError: cannot handle {bad[1]!r}"]
    assert_clean_failure(r, *expected)
    assert r.returncode == EXIT_FAILED
