"""The command line: ``python -m pipeline`` (``main``) and the ``datastore-mapper`` console script
(``console_main``, ``setup.py``'s entry point).

``main`` runs a mapper job locally or on Dataflow. Its first part needs neither Beam nor a
Google client: ``--help``, ``--list_jobs`` and every input it can refuse without asking a service
(a bad value, an unknown option, a missing project, an unknown job or parameter) answer in a
fraction of a second. A command line that passes goes on to ``launcher.launch``, which imports
Beam (~2 s).

``console_main`` is ``main`` under the name ``datastore-mapper``, and the tools:

- ``datastore-mapper [OPTIONS]`` runs a job, exactly as ``python -m pipeline [OPTIONS]``;
- ``datastore-mapper emulator [start] [--data_dir DIR | --in_memory] [--port N]`` starts a
  local Cloud Datastore emulator for one's own data and prints what to export
  (``devtools.emulator``); ``datastore-mapper emulator check`` says whether it is installed;
- ``datastore-mapper bigquery-emulator [start] [--port N] [--project P] [--data_dir DIR]`` starts
  a local BigQuery emulator, offline, and prints what to export (``devtools.bq_emulator``);
  ``datastore-mapper bigquery-emulator check`` says whether it can start here;
- ``datastore-mapper seed [--small]`` writes the demo data set into the emulator
  ``DATASTORE_EMULATOR_HOST`` points at (``devtools.seed``);
- ``datastore-mapper demo [OPTIONS]`` is ``run_demo.sh`` without the installation
  (``devtools.demo``).

A tool is imported only when it is asked for; none loads Beam.
"""
from __future__ import annotations

import datetime as dt
import importlib
import re
import sys
import textwrap
from typing import Optional, Sequence

from pipeline.api.registry import job_params, known_jobs, load_modules
from pipeline.errors import MapperError
from pipeline.launch import logs
from pipeline.launch.logs import EXIT_OK, EXIT_REFUSED, error, failure_message
from pipeline.launch.options import check_known_options, help_parser, project_and_job, set_cli_name

PROG = "datastore-mapper"
#: ``datastore-mapper``'s subcommands -> (module, what it does).
TOOLS = {
    "emulator": ("devtools.emulator", "start a local Datastore emulator for your own data"),
    "bigquery-emulator": ("devtools.bq_emulator", "start a local BigQuery emulator (offline)"),
    "seed": ("devtools.seed", "write the demo data set into the emulator"),
    "demo": ("devtools.demo", "emulator + demo data + one run, then everything stopped"),
}


def plain_text(text: str) -> str:
    """Docstring text as a terminal shows it: reStructuredText's literal and interpreted
    markup (````value:<v>````, ```bq load```) without its backquotes."""
    return re.sub(r"``(.+?)``|`([^`]+)`", lambda m: m.group(1) or m.group(2), text)


#: --list_jobs: where a job's description starts, and the width its lines are wrapped to.
_NAME_WIDTH = 22
LIST_WIDTH = 100


def first_sentence(doc: str) -> str:
    """A docstring's first sentence, whole: its first paragraph's lines joined, up to the
    first full stop that ends a sentence (before a space or the end; not that of "e.g.")."""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    m = re.search(r"(?<!\be\.g)(?<!\bi\.e)(?<!\betc)[.!?](?=\s|$)", paragraph)
    return paragraph[:m.end()] if m else paragraph


def list_jobs(modules: Sequence[str], width: int = LIST_WIDTH) -> str:
    """The registered jobs with the first sentence of their docstring and their parameters,
    wrapped to ``width`` (never cut)."""
    load_modules(modules)
    lines = ["registered jobs:"]
    lead = " " * (_NAME_WIDTH + 3)
    for name, cls in known_jobs().items():
        about = plain_text(first_sentence(cls.__doc__ or ""))
        lines.extend(textwrap.wrap(f"  {name:<{_NAME_WIDTH}} {about}", width,
                                   subsequent_indent=lead, break_on_hyphens=False,
                                   break_long_words=False) or [f"  {name}"])
        for p, h in cls.parameters.items():
            lines.extend(textwrap.wrap(f"{lead}  {p}: {plain_text(h)}", width,
                                       initial_indent="", subsequent_indent=lead + "    ",
                                       break_on_hyphens=False, break_long_words=False))
    return "\n".join(lines)


def first_checks(argv: Sequence[str], known) -> None:
    """What can be refused from the command line alone: unknown options, then what ``resolve``
    checks again once Beam is loaded (the same function, so the same messages): the project,
    the job, its parameters."""
    check_known_options(argv)
    _, job_cls = project_and_job(known.project, known.emulator_host, known.job, known.shards,
                                 known.oversampling, known.job_module)
    job_params(known.params, job_cls, dt.datetime.now(dt.timezone.utc))


def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> int:
    """Run the CLI; returns the exit code (see ``EXIT_*``; docs/failures.md lists them).
    ``prog``: the program the user ran, named in the commands the run prints."""
    argv = list(sys.argv[1:] if argv is None else argv)
    set_cli_name(prog)
    try:
        return _main(argv)
    finally:  # the name is this call's: a process that calls main() again (tests) starts clean
        set_cli_name(None)


def _main(argv: list) -> int:
    logs.configure()
    known, _ = help_parser().parse_known_args(argv)  # --help, bad values: argparse exits 2
    if known.list_jobs:
        try:
            print(list_jobs(known.job_module))
        except MapperError as e:
            error(failure_message(e))
            return EXIT_REFUSED
        return EXIT_OK
    try:
        first_checks(argv, known)
    except MapperError as e:
        error(failure_message(e))
        return EXIT_REFUSED
    # Beam, the Google clients and the graph: only for a command line that passed.
    from pipeline.launch.launcher import launch

    return launch(argv)


def console_main(argv: Optional[Sequence[str]] = None) -> int:
    """``datastore-mapper``: a tool (``TOOLS``), or else a run, as ``main`` under that name."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TOOLS:
        name, rest = argv[0], argv[1:]
        module = importlib.import_module(TOOLS[name][0])
        if name in ("emulator", "bigquery-emulator"):
            if not rest or rest[0].startswith("-") and rest[0] not in ("-h", "--help"):
                rest = ["start", *rest]  # `datastore-mapper emulator` starts one
            return module._main(rest, prog=f"{PROG} {name}")
        if name == "seed":
            return module.main(rest, prog=f"{PROG} seed")
        return module.main(rest)
    return main(argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(console_main())
