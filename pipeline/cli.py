"""``python -m pipeline``: run a mapper job locally or on Dataflow."""
from __future__ import annotations

import argparse
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

from pipeline import logs
from pipeline.errors import MapperError
from pipeline.launch import check_before_launch, make_plan, prepare_bigquery, prepare_output
from pipeline.local_runner import LOCAL_ARGS, apply_residual_fix
from pipeline.options import MapperOptions
from pipeline.registry import known_jobs, load_modules
from pipeline.run import build
from pipeline.summary import format_summary

log = logging.getLogger("pipeline")

LOCAL_RUNNERS = {"FnApiRunner", "DirectRunner", "BundleBasedDirectRunner", "SwitchingDirectRunner",
                 "PrismRunner"}

EPILOG = """\
Any other option is passed to Beam: with --runner=DataflowRunner and Dataflow's
usual options (--region, --temp_location, ...) the same command launches the job on
Dataflow. Without --runner the job runs here on Beam's FnApiRunner with two worker
processes; --direct_num_workers changes that.

Example (against the emulator):
  DATASTORE_EMULATOR_HOST=127.0.0.1:8081 python -m pipeline --job count_keys --project demo
"""


def help_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline", description="Run a mapper job over every entity of a kind, "
        "across all namespaces, split evenly into parallel work.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", help="the Google Cloud project (required)")
    parser.add_argument("--runner", help="Beam runner (default: FnApiRunner with 2 local workers)")
    MapperOptions._add_argparse_args(parser)
    return parser


def list_jobs(modules: Sequence[str]) -> str:
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
        plan = make_plan(options)
        m = options.view_as(MapperOptions)
        tmp = None
        if plan.summary_path is None and local:
            tmp = tempfile.mkdtemp(prefix="mapper-summary-")
            plan = type(plan)(**{**plan.__dict__, "summary_path": os.path.join(tmp, "summary.json")})
        namespaces = check_before_launch(plan, m.allow_empty_kind) if m.launch_checks else None
        prepare_output(plan, m.output_mode)
        plan = prepare_bigquery(plan, m, namespaces)
        log.info("job %s: %s; %s", plan.job_name, plan.query.describe(),
                 f"output {plan.output}/{plan.job_name}/" if plan.output else "no output location")
        if plan.bigquery is not None:
            log.info("streaming records into BigQuery table %s; rejected rows go to %s",
                     plan.bigquery.table, plan.bigquery.dead_letter)
        started = time.monotonic()
        p = beam.Pipeline(options=options)
        build(p, plan)
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
        if plan.summary_path and os.path.exists(plan.summary_path):
            with open(plan.summary_path, encoding="utf-8") as f:
                summary = json.load(f)
            print(format_summary(summary))
            print(f"wall time {wall:.1f} s" + (f"; summary written to {plan.summary_path}"
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
