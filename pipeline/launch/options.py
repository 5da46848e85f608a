"""The mapper's command-line options: plain argparse, so ``--help`` and a refused value need
no Beam (``pipeline.launch.beam_options.MapperOptions`` adds the same arguments to Beam's
``PipelineOptions``).

Values are validated by argparse types, so a bad value stops the run before
anything is read, with one line, argparse's "error: argument --x: ..." message, and exit code 2;
numbers are bounded where Datastore or the mapper bounds them, and the message
says what is accepted. Booleans take an explicit value (``--flag=true``) as Flex
Templates pass them, and a bare ``--flag`` means true. Like Beam's own parser,
ours takes no abbreviations: ``--shard 4`` is not ``--shards``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
from typing import Callable, Optional

from pipeline.api.mutations import WRITE_MODES
from pipeline.core import booleans
from pipeline.errors import UsageError
from pipeline.sinks.bigquery.tables import parse_table

log = logging.getLogger(__name__)

#: Datastore keeps old versions for at most this long (with point-in-time recovery).
READ_TIME_LIMIT = dt.timedelta(days=7)

EPILOG = """\
Any other option is passed to Beam: with --runner=DataflowRunner and Dataflow's
usual options (--region, --temp_location, ...) the same command launches the job on
Dataflow. Without --runner the job runs here, in this process, on Beam's FnApiRunner;
--runner=FnApiRunner --direct_running_mode=multi_processing --direct_num_workers=2 runs it
in two worker processes.

Example (against the emulator):
  DATASTORE_EMULATOR_HOST=127.0.0.1:8081 datastore-mapper --job count_keys --project demo

Tools (datastore-mapper TOOL --help):
  datastore-mapper emulator   start a local Datastore emulator for your own data
  datastore-mapper seed       write the demo data set into it
  datastore-mapper demo       emulator + demo data + one run, then everything stopped
"""


#: Scatter keys sampled per namespace at most (``--shards`` × ``--oversampling``): the sample is
#: one query's result, held in memory while the namespace is cut.
MAX_SAMPLES = 100_000


def _whole_number(text: str, minimum: int, maximum: Optional[int], accepted: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < minimum or (maximum is not None and v > maximum):
        raise argparse.ArgumentTypeError(f"{v} is not allowed: use {accepted}")
    return v


def whole_number(minimum: int, maximum: Optional[int] = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [minimum, maximum]."""
    accepted = (f"a number from {minimum} to {maximum:,}".replace(",", " ") if maximum is not None
                else "a number of at least 1" if minimum == 1 else f"{minimum} or more")

    def parse(text: str) -> int:
        return _whole_number(text, minimum, maximum, accepted)

    parse.__name__ = "whole number"
    return parse


positive_int = whole_number(1)
non_negative_int = whole_number(0)


def seconds(maximum: float, zero: bool = False) -> Callable[[str], float]:
    """An argparse type: a number of seconds above 0 (or 0 too, with ``zero``), at most
    ``maximum``."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not ((0 <= v if zero else 0 < v) and v <= maximum):
            raise argparse.ArgumentTypeError(
                f"{v} is not allowed: use a number {'from 0' if zero else 'above 0'} "
                f"and at most {maximum:g}")
        return v

    parse.__name__ = "seconds"
    return parse


def positive_float(text: str) -> float:
    """A number above 0 (no upper bound)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"{v} is not allowed: use a number above 0")
    return v


def parse_bool(text: str) -> bool:
    """A boolean option's value, by the rule the jobs' parameters follow too
    (``pipeline.core.booleans``)."""
    try:
        return booleans.parse_bool(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _escaped(text: str) -> list:
    """``text`` as (character, escaped) pairs: a backslash before a comma, a backslash or a
    space (or another whitespace character) makes that character plain text; any other
    backslash is itself."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text) and (text[i + 1] in ",\\" or text[i + 1].isspace()):
            out.append((text[i + 1], True))
            i += 2
        else:
            out.append((c, False))
            i += 1
    return out


def _strip(chars: list) -> str:
    """The text of (character, escaped) pairs, without the unescaped whitespace at its ends."""
    start, end = 0, len(chars)
    while start < end and not chars[start][1] and chars[start][0].isspace():
        start += 1
    while end > start and not chars[end - 1][1] and chars[end - 1][0].isspace():
        end -= 1
    return "".join(c for c, _ in chars[start:end])


def key_value_list(text: str) -> list:
    """k=v,k2=v2 -> [(k, v), (k2, v2)]. ``\\,`` is a comma inside a value, ``\\\\`` a
    backslash, ``\\ `` a space kept at a value's end (``quote_param`` writes a value so);
    any other backslash is itself; the whitespace around names and values is dropped."""
    items, item = [], []
    for c, escaped in _escaped(text):
        if c == "," and not escaped:
            items.append(item)
            item = []
        else:
            item.append((c, escaped))
    items.append(item)
    pairs = []
    for chars in items:
        if not _strip(chars):
            continue
        eq = next((i for i, (c, escaped) in enumerate(chars) if c == "=" and not escaped), None)
        key = _strip(chars[:eq]) if eq is not None else ""
        if eq is None or not key:
            raise argparse.ArgumentTypeError(
                f"{_strip(chars)!r} is not NAME=VALUE (a comma inside a value is written \\,)")
        pairs.append((key, _strip(chars[eq + 1:])))
    return pairs


def quote_param(value: str) -> str:
    """A value as ``--params`` reads it back exactly (``key_value_list``): its backslashes,
    commas and the whitespace at its ends escaped with a backslash."""
    text = value.replace("\\", "\\\\").replace(",", "\\,")
    body = text.strip()
    if body == text:
        return text
    lead = len(text) - len(text.lstrip())
    head, tail = text[:lead], text[lead + len(body):]
    return "".join("\\" + c for c in head) + body + "".join("\\" + c for c in tail)


def name_list(text: str) -> list:
    return [n.strip() for n in text.split(",") if n.strip()]


def parse_read_time(text: Optional[str], now: Optional[dt.datetime]) -> Optional[dt.datetime]:
    """``--read_time``: None, ``start`` (the launch time ``now``) or an RFC 3339 time in the
    last 7 days (a warning past the last hour: that needs point-in-time recovery)."""
    if text is None:
        return None
    if text.strip().lower() == "start":
        return now
    try:
        t = dt.datetime.fromisoformat(text.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--read_time {text!r} is not an RFC 3339 time "
                         "(e.g. 2026-11-27T12:00:00Z) or 'start'") from None
    if t.tzinfo is None:
        raise UsageError(f"--read_time {text!r} needs a time zone (e.g. a trailing Z for UTC)")
    t = t.astimezone(dt.timezone.utc)
    if now is not None:
        if t > now:
            raise UsageError(f"--read_time {text} is in the future: use a past time (within "
                             "the last hour, 7 days with point-in-time recovery) or 'start'")
        if now - t > READ_TIME_LIMIT:
            raise UsageError(f"--read_time {text} is more than 7 days ago: Datastore keeps old "
                             "versions for 1 hour (7 days with point-in-time recovery)")
        if now - t > dt.timedelta(hours=1):
            log.warning("--read_time %s is over an hour ago: it works only with point-in-time "
                        "recovery enabled, and then only at whole minutes", text)
    return t


def read_time_value(text: str) -> str:
    """Validated here, resolved at launch (``start`` is the launch time)."""
    try:
        parse_read_time(text, None)
    except UsageError as e:  # argparse turns only ArgumentTypeError/ValueError into a usage error
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def bigquery_table_value(text: str) -> str:
    try:
        parse_table(text, "the-run-s-project")  # the project itself is resolved at launch
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def add_mapper_arguments(parser) -> None:
    """Add the mapper's own options to an argparse parser (ours, or Beam's)."""
    g = parser.add_argument_group("datastore-mapper") if hasattr(parser, "add_argument_group") else parser
    g.add_argument("--job", help="name of the registered job to run (see --list_jobs), or "
                   "module:Class for an unregistered JobSpec")
    g.add_argument("--list_jobs", nargs="?", const=True, default=False, type=parse_bool,
                   help="print the registered jobs with their parameters and exit")
    g.add_argument("--job_module", action="append", default=[],
                   help="import this module first, to register its jobs (repeatable)")
    g.add_argument("--params", action="append", type=key_value_list, default=[],
                   help="the job's parameters as NAME=VALUE[,NAME=VALUE...] (repeatable); in a "
                        "value \\, is a comma and \\\\ a backslash")
    g.add_argument("--namespaces", type=name_list, default=None,
                   help="comma-separated namespaces to read, overriding the job's query; "
                   "__default__ is the default namespace (default: the job's choice, "
                   "usually all namespaces)")
    g.add_argument("--shards", type=whole_number(1, 10_000), default=8,
                   help="ranges per namespace, fewer for small namespaces (default 8; "
                   f"shards x oversampling at most {MAX_SAMPLES})")
    g.add_argument("--oversampling", type=whole_number(1, 1_000), default=32,
                   help="scatter samples per range (default 32)")
    g.add_argument("--slice_entities", type=whole_number(1, 1_000_000), default=2000,
                   help="a slice (its queries, then a checkpoint) reads at most this many "
                   "entities (default 2000)")
    g.add_argument("--slice_seconds", type=seconds(3600), default=30.0,
                   help="... or for at most this long (default 30)")
    g.add_argument("--query_entities", type=whole_number(1, 1_000_000), default=1000,
                   help="a slice's queries each end at a scatter sample about this many "
                   "entities ahead, so each query's key range is narrow (the emulator serves "
                   "narrow ranges fastest); a unit's first read takes this many: a unit with "
                   "fewer is read in that one query (default 1000)")
    g.add_argument("--reads_in_flight", type=whole_number(1, 64), default=4,
                   help="namespaces each worker plans at once: their first reads (one query "
                   "each, which a small namespace needs and nothing more) wait on Datastore, "
                   "not on the worker (default 4)")
    g.add_argument("--max_counters", type=whole_number(1, 100_000), default=1000,
                   help="distinct counter names kept per job; more are summed as _overflow "
                   "(default 1000)")
    g.add_argument("--output", default=None,
                   help="directory (local or gs://) for the job's records, one file per "
                   "namespace as OUTPUT/JOB/namespaces/NAMESPACE.jsonl (__default__.jsonl for "
                   "the default namespace), and its summary.json")
    g.add_argument("--output_mode", choices=["refuse", "replace", "resume"], default="refuse",
                   help="when OUTPUT/JOB already holds a complete run's output: refuse "
                   "(default) stops at launch; replace removes it first, so old and new "
                   "files never mix. After a failed run: resume reads only the namespaces "
                   "it did not complete (the leftovers of a failed run are cleared in the "
                   "other modes)")
    g.add_argument("--allow_nonempty_output", nargs="?", const=True, default=False,
                   type=parse_bool,
                   help="let --output be a non-empty directory that holds no earlier output "
                   "of this tool (refused by default: the job's files would land among "
                   "someone else's); OUTPUT/JOB itself must still hold only this tool's files "
                   "(default false)")
    g.add_argument("--job_file", nargs="?", const=True, default=False, type=parse_bool,
                   help="also write OUTPUT/JOB/all.jsonl, every namespace's records in one "
                   "file (default false)")
    g.add_argument("--database", default=None,
                   help="a named Datastore database (default: the default database)")
    g.add_argument("--read_time", type=read_time_value, default=None,
                   help="read a consistent snapshot as of this RFC 3339 time, or 'start' for "
                   "the moment the run starts (Datastore keeps 1 hour, 7 days with "
                   "point-in-time recovery)")
    g.add_argument("--key_order", choices=["auto", "utf8", "utf16"], default="auto",
                   help="how the backend orders strings in keys: utf8 (Datastore), utf16 "
                   "(the emulator); auto picks by --emulator_host")
    g.add_argument("--emulator_host", default=os.environ.get("DATASTORE_EMULATOR_HOST"),
                   help="host:port of the Datastore emulator (default: "
                   "$DATASTORE_EMULATOR_HOST); workers use it too")
    g.add_argument("--datastore_deadline", type=seconds(86_400), default=300.0,
                   help="seconds to keep retrying a Datastore call on transient errors or "
                   "silence (default 300); the launch checks use at most 20 until Datastore "
                   "has answered once")
    g.add_argument("--datastore_call_timeout", type=seconds(3600), default=60.0,
                   help="seconds one Datastore call may take before it is abandoned and "
                   "retried (default 60); the launch checks use at most 8")
    g.add_argument("--max_errors", type=whole_number(0, 1_000_000_000), default=0,
                   help="entities the job may fail on (or whose records cannot be written) "
                   "before the run fails; each goes to the dead-letter file (default 0: the "
                   "first one fails the run, once it is written down)")
    g.add_argument("--dead_letter", "--bigquery_dead_letter", dest="dead_letter",
                   default=None,
                   help="file (local or gs://) for the entities the job failed on and the "
                   "rows BigQuery rejected, with the errors, as JSON lines (default "
                   "OUTPUT/JOB/dead_letter.jsonl; needs --output then)")
    g.add_argument("--progress_seconds", type=seconds(3600, zero=True), default=5.0,
                   help="how often each worker logs its progress (0: never; default 5)")
    g.add_argument("--wait", nargs="?", const=True, default=False, type=parse_bool,
                   help="on a remote runner (Dataflow): wait for the job to end, printing its "
                   "progress from its metrics every --progress_seconds (at least 10 s), then "
                   "its summary; the exit code is the job's (default false: return once "
                   "launched; a local run always waits)")
    g.add_argument("--discard_records", nargs="?", const=True, default=False, type=parse_bool,
                   help="run a job that yields records without keeping them: counted, written "
                   "nowhere (default false: a job that yields records needs --output or "
                   "--bigquery_table)")
    g.add_argument("--allow_empty_kind", nargs="?", const=True, default=False, type=parse_bool,
                   help="run even when the kind has no entities (default false: a typo in "
                   "the kind is an error)")
    g.add_argument("--bigquery_table", type=bigquery_table_value, default=None,
                   help="stream the job's records into this BigQuery table: "
                   "[PROJECT:]DATASET.TABLE; {namespace} in TABLE makes one table per "
                   "namespace (escaped: see docs/stream-bigquery.md)")
    g.add_argument("--bigquery_create", nargs="?", const=True, default=True, type=parse_bool,
                   help="create the dataset and table when missing, with the job's schema "
                   "(default true)")
    g.add_argument("--bigquery_write_disposition", choices=["append", "empty"],
                   default="append",
                   help="append (default) to the table, or require it to be empty at launch")
    g.add_argument("--bigquery_max_bad_rows", type=whole_number(0, 1_000_000_000), default=0,
                   help="fail the run when BigQuery rejects more rows than this (default 0)")
    g.add_argument("--bigquery_schema_sample", type=whole_number(1, 100_000), default=1000,
                   help="entities read at launch to make the table schema of a job that "
                   "streams whole entities (default 1000)")
    g.add_argument("--bigquery_deadline", type=seconds(86_400), default=120.0,
                   help="seconds to keep retrying a BigQuery request on transient errors "
                   "(default 120); the launch checks use at most 20 until BigQuery has "
                   "answered once")
    g.add_argument("--bigquery_emulator_host",
                   default=os.environ.get("BIGQUERY_EMULATOR_HOST"),
                   help="host:port of a BigQuery emulator (default: "
                   "$BIGQUERY_EMULATOR_HOST); no credentials are used then")
    g.add_argument("--launch_checks", nargs="?", const=True, default=True, type=parse_bool,
                   help="check namespaces, kind and indexes before launching (default true)")
    w = parser.add_argument_group("writing back to Datastore (jobs that migrate or write)")
    w.add_argument("--writes", choices=list(WRITE_MODES), default=None,
                   help="how a job that writes back writes: dry_run (the default: read "
                   "everything, count and sample what would change, write nothing), "
                   "transactional (each batch looked up again and changed in a transaction: "
                   "no concurrent update is lost) or blind (what the job made of what was "
                   "read: cheaper, the last writer wins)")
    w.add_argument("--undo_log", nargs="?", const=True, default=True, type=parse_bool,
                   help="write every entity changed or deleted, as it was, to "
                   "OUTPUT/JOB/runs/RUN/undo/ before its commit (default true; writing for "
                   "real needs --output then; false: no way back)")
    w.add_argument("--write_batch", type=whole_number(1, 500), default=500,
                   help="mutations per blind commit (default 500, Datastore's limit)")
    w.add_argument("--transaction_groups", type=whole_number(1, 500), default=25,
                   help="entity groups per transaction (default 25: the emulator refuses "
                   "more; production takes up to 500)")
    w.add_argument("--max_write_rate", type=positive_float, default=None,
                   help="cap on writes per second for the whole job (default: none)")
    w.add_argument("--write_rampup", choices=["auto", "on", "off"], default="auto",
                   help="ramp writes up as Datastore advises (500/s for the job, +50%% every "
                   "5 minutes): auto is on for remote runners, off against the emulator and "
                   "for local runs")
    w.add_argument("--write_workers_hint", type=whole_number(1, 10_000), default=None,
                   help="how many workers share the ramp-up's budget (default: the local "
                   "workers, or --max_num_workers / --num_workers on Dataflow)")
    w.add_argument("--changes_sample", type=whole_number(0, 10_000), default=20,
                   help="before/after pairs per namespace written to changes.jsonl (default 20)")


class OneLineErrors(argparse.ArgumentParser):
    """An argparse parser whose errors are one line, ``error: argument --x: ...`` (exit code 2),
    not argparse's usage block followed by the error: a bad value is one clear line."""

    def error(self, message: str):
        self.exit(2, f"error: {message} ({cli_name()} --help lists the options)\n")


#: The program the user ran, as the console script tells the CLI (``set_cli_name``).
_CLI_NAME: list = []


def set_cli_name(name: Optional[str]) -> None:
    """Name the program the user ran (``datastore-mapper``), for the commands the CLI prints
    (the restore, the apply, ``--help``); None: guess from ``sys.argv[0]``."""
    _CLI_NAME[:] = [name] if name else []


def cli_name() -> str:
    """How the CLI was started: ``datastore-mapper`` (the console script) or
    ``python -m pipeline``."""
    if _CLI_NAME:
        return _CLI_NAME[0]
    return ("datastore-mapper" if os.path.basename(sys.argv[0] or "") == "datastore-mapper"
            else "python -m pipeline")


def help_parser() -> argparse.ArgumentParser:
    """The CLI's own parser: --help, and every mapper option checked before Beam sees them."""
    parser = OneLineErrors(
        prog=cli_name(), description="Run a mapper job over every entity of a kind, "
        "across all namespaces, split evenly into parallel work.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
    parser.add_argument("--project", help="the Google Cloud project (required)")
    parser.add_argument("--runner", help="Beam runner (default: FnApiRunner, in this process)")
    add_mapper_arguments(parser)
    return parser
