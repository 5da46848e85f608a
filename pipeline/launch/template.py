"""The Flex Template launcher: the same CLI, restricted to what a console user may ask.

Dataflow's template launcher runs ``flex_main.py`` (which calls :func:`main`) with the
parameters of ``metadata.json`` as ``--name=value`` and its own options (``--runner``,
``--project``, ``--region``, ``--temp_location``, ``--setup_file``, ...). This module:

- refuses ``--job_module`` and ``module:Class`` job names: a console user must not make
  the launcher import arbitrary modules. Only jobs registered by the modules baked into
  the image run: ``jobs`` (always) and those listed in ``$MAPPER_JOBS_MODULES``
  (comma-separated, set when the image is built, never a parameter);
- always launches on Dataflow (``--runner=DataflowRunner`` unless one is given) and so
  never blocks: the CLI returns as soon as a remote runner has accepted the job;
- with ``$MAPPER_WORKER_IMAGE`` (baked into the image) runs the workers on that custom
  SDK container, which has our packages preinstalled, and drops ``--setup_file``: staging
  the sdist would make each worker pip-install it, which needs PyPI.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Optional, Sequence

from pipeline.api.registry import known_jobs, load_modules
from pipeline.launch.options import help_parser

JOB_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
JOBS_MODULES_ENV = "MAPPER_JOBS_MODULES"
WORKER_IMAGE_ENV = "MAPPER_WORKER_IMAGE"

#: The mapper's options (by dest) a console user does not get, and why; every other mapper
#: option is a template parameter (``metadata.json``, checked both ways by the tests).
NOT_IN_TEMPLATE = {
    "list_jobs": "it prints the registry and exits: a command-line aid, it launches nothing",
    "job_module": "it would make the launcher import an arbitrary module; the launcher imports "
                  f"only the job modules built into its image (jobs, and ${JOBS_MODULES_ENV}): "
                  "see the README, 'Your own jobs in the template'",
    "emulator_host": "the Datastore emulator is for local runs and tests, not Dataflow",
    "key_order": "auto picks Datastore's (utf8) order on Dataflow; utf16 is the emulator's",
    "progress_seconds": "how often workers log progress: a debugging knob",
    "bigquery_emulator_host": "the BigQuery emulator is for local runs and tests, not Dataflow",
    "query_entities": "how wide each query's key range is: an emulator-speed knob",
}


class TemplateRefused(Exception):
    """A launch the template does not allow; the message says why."""


def baked_modules(environ=None) -> list[str]:
    environ = os.environ if environ is None else environ
    return [m.strip() for m in environ.get(JOBS_MODULES_ENV, "").split(",") if m.strip()]


def _has_option(argv: Sequence[str], name: str) -> bool:
    return any(a == f"--{name}" or a.startswith(f"--{name}=") for a in argv)


def _drop_option(argv: Sequence[str], name: str) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == f"--{name}":
            skip = True  # its value is the next argument
        elif not a.startswith(f"--{name}="):
            out.append(a)
    return out


def template_argv(argv: Sequence[str], environ=None) -> list[str]:
    """Check a launch and return the CLI arguments to run it with (raises TemplateRefused)."""
    environ = os.environ if environ is None else environ
    argv = list(argv)
    # Abbreviations are not options (allow_abbrev=False), but Beam's parser, which sees the
    # rest, must not get one that looks like --job_module either.
    known, _ = help_parser().parse_known_args(argv)
    if known.job_module or any(a.startswith("--job_m") for a in argv):
        raise TemplateRefused(
            "--job_module is not accepted by the template: the launcher imports only the job "
            f"modules built into its image (jobs, and ${JOBS_MODULES_ENV}); see the README, "
            "'Your own jobs in the template'")
    job = known.job
    if not job:
        raise TemplateRefused("the 'job' parameter is required: a registered job name such as "
                              "count_keys")
    if ":" in job or not JOB_NAME.match(job):
        raise TemplateRefused(
            f"job {job!r} is not a registered job name (lowercase letters, digits and _): the "
            "template runs only registered jobs, not module:Class")
    load_modules(baked_modules(environ))
    if job not in known_jobs():
        raise TemplateRefused(f"unknown job {job!r}; registered jobs in this template: "
                              f"{', '.join(known_jobs()) or '(none)'}")
    if not _has_option(argv, "runner"):
        argv = ["--runner=DataflowRunner", *argv]
    worker_image = environ.get(WORKER_IMAGE_ENV, "").strip()
    if worker_image and not _has_option(argv, "sdk_container_image"):
        argv = [*_drop_option(argv, "setup_file"), f"--sdk_container_image={worker_image}"]
    return argv


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = template_argv(argv)
    except TemplateRefused as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # e.g. a baked module that fails to import
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    # Imported here, after the checks: the CLI imports Beam, which keeps Beam (and anything a
    # refused option could have loaded through it) off the refusal path.
    from pipeline.launch.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
