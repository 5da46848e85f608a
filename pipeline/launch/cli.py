"""``python -m pipeline``: run a mapper job locally or on Dataflow."""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sys
import tempfile
import time
from typing import Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from pipeline.api.registry import known_jobs, load_modules
from pipeline.core.summary import format_summary
from pipeline.errors import MapperError
from pipeline.graph.build import build
from pipeline.launch import logs
from pipeline.launch.beam_options import MapperOptions
from pipeline.launch.checks import check_before_launch
from pipeline.launch.local_runner import LOCAL_ARGS, apply_residual_fix
from pipeline.launch.options import help_parser
from pipeline.launch.resolve import resolve
from pipeline.sinks.bigquery.prepare import prepare as prepare_bigquery
from pipeline.sinks.files.layout import SUMMARY_FILE, prepare_output

log = logging.getLogger("pipeline")

LOCAL_RUNNERS = {"FnApiRunner", "DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner",
                 "PrismRunner"}


def list_jobs(modules: Sequence[str]) -> str:
    """The registered jobs with the first line of their docstring and their parameters."""
    load_modules(modules)
    lines = ["registered jobs:"]
    for name, cls in known_jobs().items():
        doc = (cls.__doc__ or "").strip().splitlines()
        lines.append(f"  {name:<22} {doc[0] if doc else ''}")
        for p, h in cls.parameters.items():
            lines.append(f"  {'':<22}   {p}: {h}")
    return "\n".join(lines)


def failure_message(err: BaseException) -> Optional[str]:
    """Our own error, found inside whatever a runner wrapped it in."""
    text = str(err)
    if isinstance(err, MapperError):
        # A runner may re-raise our own error with " [while running 'STEP']" appended.
        m = re.match(r"(.*?)(?: \[while running '([^']+)'\])?$", text, flags=re.S)
        return m.group(1).strip() + (f" (in step {m.group(2)})" if m.group(2) else "")
    # Not preceded by a word or a dot: click.exceptions.UsageError or BigQueryError are not ours.
    matches = re.findall(r"(?<![\w.])(?:pipeline\.errors\.)?"
                         r"(?:MapperError|UsageError|QueryError|JobFailed)"
                         r": (.+?)(?: \[while running '([^']+)'\])?$", text, flags=re.M)
    if not matches:
        return None
    msg, step = matches[-1]
    return msg.strip() + (f" (in step {step})" if step else "")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the CLI; returns the exit code (2: bad input, 1: the run failed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logs.configure()
    known, _ = help_parser().parse_known_args(argv)  # --help, bad values: argparse exits 2
    try:
        if known.list_jobs:
            print(list_jobs(known.job_module))
            return 0
        if not any(a == "--runner" or a.startswith("--runner=") for a in argv):
            argv = LOCAL_ARGS + argv
        options = PipelineOptions(argv)
        runner = options.view_as(StandardOptions).runner or ""
        local = runner.split(".")[-1] in LOCAL_RUNNERS
        if local:
            apply_residual_fix()
        run = resolve(options)
        m = options.view_as(MapperOptions)
        tmp = None
        if run.output.summary_path is None and local:
            tmp = tempfile.mkdtemp(prefix="mapper-summary-")
            run = dataclasses.replace(run, output=dataclasses.replace(
                run.output, summary_path=os.path.join(tmp, SUMMARY_FILE)))
        namespaces = check_before_launch(run, m.allow_empty_kind) if m.launch_checks else None
        prepare_output(run.output.directory, run.job.name, m.output_mode)
        bigquery = prepare_bigquery(run, m, namespaces)
        out_dir = run.output.directory
        log.info("job %s: %s; %s", run.job.name, run.read.query.describe(),
                 f"output {out_dir}/{run.job.name}/" if out_dir else "no output location")
        if bigquery is not None:
            log.info("streaming records into BigQuery table %s; rejected rows go to %s",
                     bigquery.table, bigquery.dead_letter)
        started = time.monotonic()
        p = beam.Pipeline(options=options)
        build(p, run, bigquery)
        if not local:
            p.run()
            log.info("launched on %s; not waiting for a remote runner's result here", runner)
            return 0
        worker_log = os.path.join(tempfile.gettempdir(), f"mapper-workers-{os.getpid()}.log")
        try:
            with logs.worker_stderr_to(worker_log):
                p.run().wait_until_finish()
        except Exception:
            log.info("the local workers' raw output is in %s", worker_log)
            raise
        else:
            os.unlink(worker_log)
        wall = time.monotonic() - started
        summary_path = run.output.summary_path
        if summary_path and os.path.exists(summary_path):
            with open(summary_path, encoding="utf-8") as f:
                summary = json.load(f)
            print(format_summary(summary))
            print(f"wall time {wall:.1f} s" + (f"; summary written to {summary_path}"
                                               if tmp is None else ""))
        return 0
    except MapperError as e:
        print(f"error: {failure_message(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # a runner wraps errors raised on workers
        msg = failure_message(e)
        if msg is None:
            raise
        print(f"error: {msg}", file=sys.stderr)
        return 1
