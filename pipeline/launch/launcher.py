"""Launching a run that passed the CLI's first checks (``cli``): Beam's options, the job
resolved, the output planned, the launch checks against the services, then the run, here
(``_run_locally``) or on Dataflow (``_launch_remote``). Everything here needs Beam.

**Local runs**: Beam's FnApiRunner in this process, and nothing else (``options.LOCAL_ARGS``,
``check_local``). Pinned because plain DirectRunner first tries to download Prism (offline: it
fails), and kept to one in-process worker because Beam's other local modes lose or corrupt data:

- ``--direct_num_workers`` above 1 makes the FnApiRunner split each bundle across workers
  (``ParallelBundleManager``) and merge their responses keeping only metrics and errors: the
  parts' residual roots are dropped, so every self-checkpoint of a splittable DoFn is lost and
  a range read in slices stops after its first slice, without an error (measured: 800 of 3,000
  entities; Apache Beam issue #19842, open in 2.77);
- ``multi_threading`` corrupted data in our trials (``shared/notes/beam.md``);
- ``multi_processing`` with one worker runs it in a subprocess whose death the runner does not
  notice unless a bundle is in flight: the run would wait for it forever.

Against the emulator, which is what limits a local run, one in-process worker reads as fast as
two worker processes did, with half the CPU and a third of the memory (docs/performance.md). A
run that needs more workers runs on Dataflow.

**A local run's private directory** (``RunDir``: the workers' raw output, the progress
channel), made with ``mkdtemp`` (mode 0700, a name nobody can predict), its files created
exclusively and without following symlinks; removed however the run ends, so nothing is left in
the temporary directory. A run without --output keeps its summary and report in the user's
cache directory (``results_dir``); a failed run's workers' log is moved there first, and the
final message names it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import io
import json
import logging
import os
import shutil
import sys
import signal
import tempfile
import threading
import time
from typing import Mapping, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions
from apache_beam.runners.runner import create_runner

from pipeline.core import terminal
from pipeline.core.retry import LaunchRetry
from pipeline.core.summary import format_summary
from pipeline.errors import MapperError, UsageError
from pipeline.graph.build import build
from pipeline.launch import logs
from pipeline.launch.logs import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    error,
    failure_message,
    say,
    show,
)
from pipeline.launch.options import LOCAL_ARGS
from pipeline.launch.preflight import check_before_launch, check_records_have_a_sink
from pipeline.launch.progress import LISTING, RemoteWait, watching
from pipeline.launch.resolve import MapperOptions, is_local, resolve
from pipeline.sinks.bigquery.prepare import prepare as prepare_bigquery
from pipeline.sinks.files import deadletters, lease
from pipeline.sinks.files.layout import (
    NAMESPACES_DIR,
    REPORT_FILE,
    SUMMARY_FILE,
    files_under,
    job_dir,
    remove_tree,
    shard_dir,
)
from pipeline.sinks.files.ownership import files_of_the_run
from pipeline.sinks.files.prepare import plan_output, take_output

log = logging.getLogger("pipeline")


def check_beam_options(options: PipelineOptions) -> None:
    """Every Beam option parsed now, before anything is launched: a bad value is one line (a
    UsageError), not argparse's usage block or a traceback half-way through the run; an unknown
    runner too."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            options.get_all_options()
    except SystemExit:
        lines = captured.getvalue().strip().splitlines()
        said = next((ln.split(": error: ", 1)[1] for ln in reversed(lines) if ": error: " in ln),
                    lines[-1] if lines else "a Beam option has a bad value")
        raise UsageError(said) from None
    runner = options.view_as(StandardOptions).runner
    if runner:
        try:
            create_runner(runner)
        except (ValueError, ImportError) as e:
            raise UsageError(f"--runner {runner}: {e}") from None


def check_local(options: PipelineOptions) -> None:
    """Refuse Beam's local modes that lose data: one line, naming the option."""
    direct = options.view_as(DirectOptions)
    mode = direct.direct_running_mode or "in_memory"
    if mode != "in_memory":
        raise UsageError(
            f"--direct_running_mode={mode} is not supported: local runs are in this process "
            "(in_memory), because Beam's other local modes lose or corrupt data (see "
            "docs/design.md, 'Local runs'); leave it out, or run on Dataflow "
            "(--runner=DataflowRunner) for more workers")
    if (direct.direct_num_workers or 1) != 1:
        raise UsageError(
            f"--direct_num_workers={direct.direct_num_workers} is not supported: Beam's "
            "local runner drops the checkpoints of a splittable read with more than one "
            "worker (a range read in slices would stop after its first slice, losing data); "
            "leave it out, or run on Dataflow (--runner=DataflowRunner) for more workers")


def launch(argv: Sequence[str]) -> int:
    """Everything after the CLI's first checks (``argv``: the command line as given)."""
    argv = list(argv)
    given = list(argv)
    if not any(a == "--runner" or a.startswith("--runner=") for a in argv):
        argv = LOCAL_ARGS + argv
    plan = held = None
    try:
        options = PipelineOptions(argv)
        check_beam_options(options)
        runner = options.view_as(StandardOptions).runner or ""
        local = is_local(runner)
        if local:
            check_local(options)
        run = resolve(options, argv=given)
        m = options.view_as(MapperOptions)
        check_records_have_a_sink(run, m.bigquery_table)
        # decides only: nothing is written yet
        plan = plan_output(run, m.output_mode, bool(m.allow_nonempty_output))
        run = plan.run
        datastore = LaunchRetry(run.read.retry)  # Datastore's retries in this launch
        namespaces = (check_before_launch(run, m.allow_empty_kind, datastore)
                      if m.launch_checks else None)
        run = dataclasses.replace(run, bigquery=prepare_bigquery(run, m, namespaces, datastore))
        held = take_output(plan, local=local)  # the last check: nothing under OUTPUT before it
    except (MapperError, KeyboardInterrupt) as e:
        if held is not None:
            _release(plan.run)
        if isinstance(e, KeyboardInterrupt):
            say("interrupted before the run started: nothing was read")
            return EXIT_INTERRUPTED
        error(failure_message(e))
        return EXIT_REFUSED
    out_dir = run.output.directory
    log.info("job %s: %s; %s", run.job.name, run.read.query.describe(),
             f"output {out_dir}/{run.job.name}/" if out_dir else "no output location")
    if run.bigquery is not None:
        log.info("streaming records into BigQuery table %s; rejected rows go to %s",
                 run.bigquery.table, run.bigquery.dead_letter)
    if not local:
        return _launch_remote(options, run, runner)
    return _run_locally(options, run, held)


def _launch_remote(options, run, runner: str) -> int:
    try:
        p = beam.Pipeline(options=options)
        build(p, run)
        result = p.run()
    except MapperError as e:
        _release(run)
        error(failure_message(e))
        return EXIT_REFUSED
    except Exception:
        _release(run)
        raise
    if not options.view_as(MapperOptions).wait:
        log.info("launched on %s; not waiting for its result (--wait follows it)", runner)
        return EXIT_OK
    return wait_for_remote(result, run, runner)


def wait_for_remote(result, run, runner: str, **kw) -> int:
    """--wait: the job's progress lines from its metrics until it ends, then its summary
    (``kw``: RemoteWait's clock and sleep, for tests)."""
    waiter = RemoteWait(result, run.job.metrics_namespace,
                        lambda line: say(terminal.escape(line)),  # one line each
                        every=run.read.progress_seconds,
                        write_mode=run.write.mode if run.write.enabled else None, **kw)
    say(f"launched on {runner}; waiting for the job to end (Ctrl-C stops waiting, not the job)")
    try:
        state = waiter.run()
    except KeyboardInterrupt:
        say("interrupted: stopped waiting; the job goes on (follow it in the Dataflow console)")
        return EXIT_INTERRUPTED
    if state != "DONE":
        error(f"the job ended {state} on {runner}"
              + (f"; its summary (if written) is {run.output.summary_path}"
                 if run.output.summary_path else ""))
        return EXIT_FAILED
    summary = _read_summary(run.output.summary_path)
    if summary is not None:
        show(format_summary(summary))
        show(terminal.escape(f"summary {run.output.summary_path}"
                             + (f"; report {run.output.report_path}"
                                if run.output.report_path else "")))
    return EXIT_OK


def _read_summary(path: Optional[str]) -> Optional[dict]:
    if not path:
        return None
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(path) as f:
            return json.loads(f.read().decode("utf-8"))
    except Exception as e:
        log.warning("could not read the summary %s: %s", path, e)
        return None


def _release(run) -> None:
    """The run is over without completing: its lease stays as the record of the files it
    left under OUTPUT/JOB (so that the next run may clear them), or goes if it left none."""
    out = run.output
    if not out.directory:
        return
    try:
        left = files_of_the_run(out.directory, run.job.name)
    except Exception as e:  # unlisted: keep the lease (its run id still names its temp files)
        log.warning("could not list what the run left in %s: %s", out.directory, e)
        left = None
    if left == []:
        lease.release(out.directory, run.job.name, out.run_id)
    else:
        lease.end(out.directory, run.job.name, out.run_id, "failed", left or [])


def _finish_failed(run) -> Optional[str]:
    """After a failed or interrupted local run: its dead letters composed into their file, its
    temporary shards removed, its lease released; returns a line about the dead letters."""
    out = run.output
    note = None
    try:
        if out.dead_letter_parts:
            n = deadletters.compose(out.dead_letter_parts, out.dead_letter)
            if n:
                note = f"{n} dead letter(s) in {out.dead_letter}"
        if out.directory:
            remove_tree(shard_dir(out.directory, run.job.name, out.run_id))
        if out.progress_dir:  # of no use after the run: the workers' log is what is kept
            shutil.rmtree(out.progress_dir, ignore_errors=True)
        if not out.directory and out.summary_path:  # the cache directory, if nothing went in
            with contextlib.suppress(OSError):
                os.rmdir(os.path.dirname(out.summary_path))
    except Exception as e:  # a clean-up that fails must not hide why the run failed
        log.warning("could not clean up after the run: %s", e)
    _release(run)
    return note


# --- a local run's own places -----------------------------------------------------------------

#: The start of a local run's private directory's name, in the temporary directory.
RUNDIR_PREFIX = "datastore-mapper-run-"
#: Under the user's cache directory: one directory per run without --output.
RUNS_DIR = os.path.join("datastore-mapper", "runs")


def cache_home(environ: Optional[Mapping[str, str]] = None) -> str:
    """``$XDG_CACHE_HOME``, or ``~/.cache`` (the XDG base directory rule)."""
    environ = os.environ if environ is None else environ
    home = environ.get("XDG_CACHE_HOME", "")
    return home if os.path.isabs(home) else os.path.join(os.path.expanduser("~"), ".cache")


def results_dir(job: str, started: dt.datetime, run_id: str,
                environ: Optional[Mapping[str, str]] = None) -> str:
    """A new directory for a run's summary and report when it has no --output:
    ``CACHE/datastore-mapper/runs/YYYYMMDDTHHMMSSZ-JOB-RUNID`` (private, kept: the CLI names it
    at the end)."""
    parent = os.path.join(cache_home(environ), RUNS_DIR)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    path = os.path.join(parent, f"{started.astimezone(dt.timezone.utc):%Y%m%dT%H%M%SZ}-"
                                f"{job}-{run_id}")
    os.mkdir(path, 0o700)
    return path


class RunDir:
    """A local run's private directory: made now, removed however the run ends (the module's
    docstring)."""

    def __init__(self) -> None:
        self.path = tempfile.mkdtemp(prefix=RUNDIR_PREFIX)  # 0700, unique

    def subdir(self, name: str) -> str:
        """A new private directory inside (the progress channel's)."""
        path = os.path.join(self.path, name)
        os.mkdir(path, 0o700)
        return path

    def file(self, name: str) -> str:
        """A new file inside, made now: exclusive, no symlink followed, 0600."""
        path = os.path.join(self.path, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        os.close(fd)
        return path

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _local_output(run, rundir: RunDir):
    """A local run's own places: the progress channel in its private directory and, without
    --output, a directory in the user's cache for the summary and the report."""
    out = run.output
    changes = {"progress_dir": rundir.subdir("progress")}
    if out.summary_path is None:
        kept = results_dir(run.job.name, run.job.started, out.run_id)
        changes.update(summary_path=os.path.join(kept, SUMMARY_FILE),
                       report_path=os.path.join(kept, REPORT_FILE))
    return dataclasses.replace(run, output=dataclasses.replace(out, **changes))


def _run_locally(options, run, held) -> int:
    """A local run; its private directory in the temporary directory is removed however the
    run ends (succeeded, failed, interrupted, or an error of Beam's own): a failed run's
    workers' log is kept in the user's cache directory (``_keep_workers_log``) first."""
    rundir = RunDir()
    try:
        return _run_in(rundir, options, run, held)
    finally:
        rundir.remove()


def _keep_workers_log(run, worker_log: str) -> Optional[str]:
    """After a failed run: its workers' log moved out of the run's private directory (about to
    be removed) into the directory the run's summary goes to without --output, made for it if
    need be (``CACHE/datastore-mapper/runs/...``, private); None if the log is empty or cannot
    be kept (then it goes with the run's directory)."""
    try:
        if not os.path.getsize(worker_log):
            return None
        out = run.output
        if not out.directory and out.summary_path:
            kept = os.path.dirname(out.summary_path)
            os.makedirs(kept, mode=0o700, exist_ok=True)
        else:
            kept = results_dir(run.job.name, run.job.started, out.run_id)
        return shutil.move(worker_log, os.path.join(kept, os.path.basename(worker_log)))
    except OSError as e:
        log.warning("could not keep the workers' log %s: %s", worker_log, e)
        return None


def _run_in(rundir: RunDir, options, run, held) -> int:
    run = _local_output(run, rundir)
    worker_log = rundir.file("workers.log")
    started = time.monotonic()
    every = run.read.progress_seconds
    heartbeat = (lease.Heartbeat(run.output.directory, run.job.name, held) if held
                 else contextlib.nullcontext())
    try:
        p = beam.Pipeline(options=options)
        build(p, run)
        with heartbeat, logs.worker_stderr_to(worker_log), _quiet_when_interrupted(), \
                contextlib.redirect_stdout(terminal.TerminalSafeStream(sys.stdout)), watching(
                    run.output.progress_dir, every, run.job.name, started,
                    run.write.mode if run.write.enabled else None,
                    # a restore lists no namespace: it reads its undo log or backup's files
                    idle="restoring from the undo log or backup" if run.job.spec.reads_undo_log
                    else LISTING):
            try:
                p.run().wait_until_finish()
            except (KeyboardInterrupt, Exception) as e:
                # In-process, the KeyboardInterrupt lands inside a DoFn, and Beam re-raises it
                # from a bundle method as "RuntimeError: KeyboardInterrupt [while running ...]":
                # after a Ctrl-C, whatever the run raises is the interruption.
                if not (isinstance(e, KeyboardInterrupt) or logs.is_interrupted()):
                    raise
                raise KeyboardInterrupt from None
    except KeyboardInterrupt:
        note = _finish_failed(run)
        rundir.remove()
        done = _complete_namespaces(run)
        say(f"interrupted: the run stopped after {time.monotonic() - started:.0f} s"
            + (f"; {done} namespace file(s) were complete" if done is not None else "")
            + "; its temporary files were removed, the output is incomplete (run again to "
            "start over, or --output_mode=resume to read only what is missing)"
            + (f"; {note}" if note else ""))
        return EXIT_INTERRUPTED
    except Exception as e:  # a runner wraps errors raised on workers
        note = _finish_failed(run)
        kept = _keep_workers_log(run, worker_log)
        msg = failure_message(e)
        if msg is None:
            if kept:
                log.error("the local workers' raw output is in %s", kept)
            raise
        error(msg + (f"; {note}" if note else ""))
        if kept and kept not in msg:
            say(f"(the workers' raw output is in {kept})")
        return EXIT_FAILED
    summary_path = run.output.summary_path
    if summary_path and os.path.exists(summary_path):
        with open(summary_path, encoding="utf-8") as f:
            summary = json.load(f)
        show(format_summary(summary))
        show(terminal.escape(where_line(summary, summary_path, run.output.report_path)))
    return EXIT_OK


def where_line(summary: dict, summary_path: str, report_path: Optional[str]) -> str:
    """The run's last line: where its summary, report and dead letters are."""
    dead = summary.get("dead_letters") or {}
    report = (f"; report {report_path}" if report_path and os.path.exists(report_path) else "")
    return (f"summary {summary_path}{report}"
            + (f"; {dead['count']} dead letter(s) in {dead['file']}" if dead.get("count")
               else ""))


@contextlib.contextmanager
def _quiet_when_interrupted():
    """Ctrl-C: Beam's own records stop at once (``logs.interrupted``), before Beam unwinds and
    logs the errors of workers that went away, which the ``interrupted:`` line stands for."""
    logs.interrupted(False)
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_sigint(signum, frame):
        logs.interrupted()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _complete_namespaces(run) -> Optional[int]:
    out = run.output
    if not out.directory:
        return None
    return len([p for p in files_under(job_dir(out.directory, run.job.name))
                if f"/{NAMESPACES_DIR}/" in p])
