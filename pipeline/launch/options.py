"""The command-line options, and what the command line alone decides, with no Beam and no service.

The mapper's options are declared once, in ``OPTIONS`` (the option table below): plain argparse,
so ``--help`` and a refused value need no Beam (``pipeline.launch.resolve.MapperOptions`` adds
the same arguments to Beam's ``PipelineOptions``); the template's ``metadata.json`` and the docs'
option tables are made from the same table.

Values are validated by argparse types, so a bad value stops the run before
anything is read, with one line, argparse's "error: argument --x: ..." message, and exit code 2;
numbers are bounded where Datastore or the mapper bounds them, and the message
says what is accepted. Booleans take an explicit value (``--flag=true``) as Flex
Templates pass them, and a bare ``--flag`` means true. Like Beam's own parser,
ours takes no abbreviations: ``--shard 4`` is not ``--shards``.

Every option on the command line must be one that the mapper or Beam knows
(``check_known_options``). Beam's own parser only logs ``Unparseable argument: --shard`` and the
run goes on with the defaults, so a typo silently changes the run. Here a parser with the options
Beam's own parser has (every ``PipelineOptions`` subclass's arguments, no abbreviations) reads
the command line first, and anything it does not know stops the launch with one line naming the
closest option. The names come from tables, not from Beam itself, so that a refused option costs
no import of Beam (~2 s): Beam's from a generated file (``beam_options.json``), the mapper's from
the option table (a new mapper option needs nothing regenerated there).
``tests/unit/test_known_options.py`` checks that the two are what Beam's parser has.

The project, the job class and the sampling bound are decided from the command line alone too
(``project_and_job``): the CLI checks them before importing Beam (``cli.first_checks``), and
``resolve`` takes its answer from here, so both say the same thing in the same order. So is
where a run without ``--runner`` runs: Beam's FnApiRunner in this process (``LOCAL_ARGS``).

``python -m pipeline.launch.options --write`` makes the generated files anew (``metadata.json``,
the option tables of ``docs/options.md``, and ``beam_options.json`` from the installed Beam's
parser: after a Beam upgrade); ``--check`` says which is stale.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import difflib
import functools
import json
import logging
import os
import pathlib
import sys
from typing import Any, Callable, Optional, Sequence, Type, Union

from pipeline.api.job import JobSpec
from pipeline.api.registry import get_job, load_modules
from pipeline.core import booleans
from pipeline.errors import UsageError
from pipeline.sinks.bigquery.tables import parse_table

log = logging.getLogger(__name__)

#: Datastore keeps old versions for at most this long (with point-in-time recovery).
READ_TIME_LIMIT = dt.timedelta(days=7)

EPILOG = """\
Any other option is passed to Beam: with --runner=DataflowRunner and Dataflow's
usual options (--region, --temp_location, ...) the same command launches the job on
Dataflow. Without --runner the job runs here, in this process, on Beam's FnApiRunner
(one worker: Beam's other local modes lose data).

Example (against the emulator):
  DATASTORE_EMULATOR_HOST=127.0.0.1:8081 datastore-mapper --job count_keys --project demo

Tools (datastore-mapper TOOL --help):
  datastore-mapper emulator            start a local Datastore emulator for your own data
  datastore-mapper bigquery-emulator   start a local BigQuery emulator for your own data
  datastore-mapper seed                write the demo data set into it
  datastore-mapper demo                emulator + demo data + one run, then everything stopped
"""


#: How a run without ``--runner`` is pinned: Beam's FnApiRunner, in this process, one worker (why:
#: ``pipeline.launch.launcher``'s docstring, "Local runs"; ``launcher.check_local`` refuses the
#: other local modes).
LOCAL_ARGS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory",
              "--direct_num_workers=1"]

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


# --- the option table ---------------------------------------------------------------------------
#
# One entry per mapper option, the only place an option is declared. From it come: the argparse
# arguments (``add_mapper_arguments``: the CLI's own parser and Beam's ``MapperOptions``), the
# ``RunConfig`` fields it fills as given (``config_fields``), the Flex Template's parameters
# (``metadata.json``, generated) and the options a console user does not get, with the reason
# (``NOT_IN_TEMPLATE``: the template launcher refuses them), and the option tables of
# ``docs/options.md`` (generated). ``python -m pipeline.launch.options --write`` regenerates the
# generated files; a test fails when one is stale.

VALUE, FLAG, REPEAT = "value", "flag", "repeat"


@dataclasses.dataclass(frozen=True)
class Param:
    """An option's Flex Template parameter: the console's label and help, the regex the console
    checks a value against (the launcher checks it again, stricter), whether it may be empty."""

    label: str
    help: str
    regex: str
    optional: bool = True


@dataclasses.dataclass(frozen=True)
class Option:
    """One mapper option. ``kind``: VALUE (``--name V``), FLAG (``--name=true|false``; bare:
    true) or REPEAT (``--name V`` again and again, a list). ``field``: the ``RunConfig`` field
    it fills as given, as ``section.field`` (``""``: resolving it takes code). ``template``: its
    template parameter, or why a console user does not get it. ``doc``/``shown``: the docs
    table's meaning and default, when not ``help`` and the default as it is."""

    name: str
    help: str
    template: Union[Param, str]
    type: Optional[Callable[[str], Any]] = None
    default: Any = None
    choices: Optional[tuple] = None
    kind: str = VALUE
    aliases: tuple = ()
    env: str = ""  # the default is this environment variable's value, when set
    writes: bool = False  # one of the write-back options (their own group and docs table)
    field: str = ""
    doc: str = ""
    shown: Optional[str] = None

    def argparse_kwargs(self) -> dict:
        kw: dict = {"help": self.help, "default": self.default}
        if self.env:
            kw["default"] = os.environ.get(self.env, self.default)
        if self.kind == FLAG:
            kw.update(nargs="?", const=True, type=parse_bool)
        elif self.kind == REPEAT:
            kw.update(action="append", default=[])
        if self.type is not None:
            kw["type"] = self.type
        if self.choices is not None:
            kw["choices"] = list(self.choices)
        if self.aliases:
            kw["dest"] = self.name
        return kw

    def shown_default(self) -> str:
        """The default as the docs table shows it."""
        if self.shown is not None:
            return self.shown
        d = self.default
        if d is None or d == []:
            return ""
        if isinstance(d, bool):
            return str(d).lower()
        if isinstance(d, str):
            return f"`{d}`"
        return f"{d:g}" if isinstance(d, float) else str(d)


OPTIONS: tuple = (
    Option('job',
           help=('name of the registered job to run (see --list_jobs), or module:Class for an '
                 'unregistered JobSpec'),
           doc='registered job name, or `module:Class`',
           template=Param('Job',
                          help=('Name of a job registered in the template image, e.g. count_keys, '
                                'count_by_property, created_between, export_keys (python -m '
                                'pipeline --list_jobs lists them). module:Class is not accepted.'),
                          regex='^[a-z][a-z0-9_]*$',
                          optional=False)),
    Option('list_jobs',
           help='print the registered jobs with their parameters and exit',
           doc='print the registered jobs and their parameters',
           shown='',
           default=False,
           kind=FLAG,
           template='it prints the registry and exits: a command-line aid, it launches nothing'),
    Option('job_module',
           help='import this module first, to register its jobs (repeatable)',
           doc='import a module that registers jobs (repeatable)',
           kind=REPEAT,
           template=('it would make the launcher import an arbitrary module; the launcher imports '
                     'only the job modules built into its image (jobs, and $MAPPER_JOBS_MODULES): '
                     "see docs/dataflow-template.md, 'Your own jobs in the template image'")),
    Option('params',
           help=("the job's parameters as NAME=VALUE[,NAME=VALUE...] (repeatable); in a value \\, "
                 'is a comma and \\\\ a backslash'),
           doc=("the job's parameters, `NAME=VALUE[,NAME=VALUE]` (repeatable); in a value `\\,` is "
                'a comma, `\\\\` a backslash, `\\ ` a space kept at its end (any other backslash is '
                'itself)'),
           type=key_value_list,
           default=[],
           kind=REPEAT,
           template=Param('Job parameters',
                          help=("The job's own parameters as NAME=VALUE,NAME=VALUE, e.g. "
                                'kind=Order,property=status. A comma inside a value is written \\, '
                                'and a backslash \\\\ (e.g. from=gs://b/x\\,y/undo). A name the job '
                                'does not declare is refused.'),
                          regex='^(?:[^=,\\\\]|\\\\.)+=(?:[^,\\\\]|\\\\.)*(,(?:[^=,\\\\]|\\\\.)+=(?:[^,\\\\]|\\\\.)*)*$')),
    Option('namespaces',
           help=("comma-separated namespaces to read, overriding the job's query; __default__ is "
                 "the default namespace (default: the job's choice, usually all namespaces)"),
           doc='comma-separated namespaces; `__default__` is the default namespace',
           shown="the job's query (all)",
           type=name_list,
           default=None,
           template=Param('Namespaces',
                          help=('Comma-separated namespaces to read (each must exist); __default__'
                                " is the default namespace. Empty: the job's choice, usually all "
                                'namespaces.'),
                          regex='^[A-Za-z0-9._-]+(,[A-Za-z0-9._-]+)*$')),
    Option('shards',
           help=('ranges per namespace, fewer for small namespaces (default 8; shards x '
                 f'oversampling at most {MAX_SAMPLES})'),
           doc='ranges per namespace (fewer for small namespaces); 1 to 10,000',
           type=whole_number(1, 10_000),
           default=8,
           field='read.shards',
           template=Param('Ranges per namespace',
                          help=('How many key ranges each namespace is split into (fewer for small'
                                ' namespaces). Default 8.'),
                          regex='^[1-9][0-9]*$')),
    Option('oversampling',
           help='scatter samples per range (default 32)',
           doc=('scatter samples per range; 1 to 1,000, and `shards × oversampling` at most '
                '100,000'),
           type=whole_number(1, 1_000),
           default=32,
           field='read.oversampling',
           template=Param('Scatter samples per range',
                          help=('Scatter samples read per range to place the split points. Default'
                                ' 32.'),
                          regex='^[1-9][0-9]*$')),
    Option('slice_entities',
           help=('a slice (its queries, then a checkpoint) reads at most this many entities '
                 '(default 2000)'),
           doc='entities per slice (its queries, then a checkpoint)',
           type=whole_number(1, 1_000_000),
           default=2000,
           field='read.slice_entities',
           template=Param('Entities per slice',
                          help=('A slice (its queries, then a checkpoint) reads at most this many '
                                'entities. Default 2000.'),
                          regex='^[1-9][0-9]*$')),
    Option('slice_seconds',
           help='... or for at most this long (default 30)',
           doc='... or seconds per slice, checked at page ends',
           type=seconds(3600),
           default=30.0,
           field='read.slice_seconds',
           template=Param('Seconds per slice',
                          help=('... or for at most this many seconds, checked at page ends. '
                                'Default 30.'),
                          regex='^([1-9][0-9]*(\\.[0-9]+)?|0?\\.[0-9]*[1-9][0-9]*)$')),
    Option('query_entities',
           help=("a slice's queries each end at a scatter sample about this many entities ahead, "
                 "so each query's key range is narrow (the emulator serves narrow ranges fastest);"
                 " a unit's first read takes this many: a unit with fewer is read in that one "
                 'query (default 1000)'),
           doc=('about how many entities each query of a key-range slice spans: it ends at a '
                'scatter sample that far ahead (narrow queries; see [How it works](design.md)); '
                "also the bound of a unit's first read (at most `--slice_entities`): a unit with "
                'fewer entities is read in that one query (see [Many namespaces](design.md#many-'
                'namespaces-tenants))'),
           type=whole_number(1, 1_000_000),
           default=1000,
           field='read.query_entities',
           template="how wide each query's key range is: an emulator-speed knob"),
    Option('reads_in_flight',
           help=('namespaces each worker plans at once: their first reads (one query each, which a'
                 ' small namespace needs and nothing more) wait on Datastore, not on the worker '
                 '(default 4)'),
           doc=('namespaces each worker plans at once (their first reads wait on Datastore, not on'
                ' the worker); 1 to 64'),
           type=whole_number(1, 64),
           default=4,
           field='read.reads_in_flight',
           template=Param('Namespaces planned at once per worker',
                          help=('How many namespaces each worker reads first (plans) at once: '
                                'their queries wait on Datastore, not on the worker. 1 to 64, '
                                'default 4.'),
                          regex='^([1-9]|[1-5][0-9]|6[0-4])$')),
    Option('max_counters',
           help='distinct counter names kept per job; more are summed as _overflow (default 1000)',
           doc='distinct counter names kept; further ones are summed as `_overflow`',
           type=whole_number(1, 100_000),
           default=1000,
           field='job.max_counters',
           template=Param('Distinct counters kept',
                          help=('Distinct counter names kept per job; further ones are summed as '
                                '_overflow. Default 1000.'),
                          regex='^[1-9][0-9]*$')),
    Option('output',
           help=("directory (local or gs://) for the job's records, one file per namespace as "
                 'OUTPUT/JOB/namespaces/NAMESPACE.jsonl (__default__.jsonl for the default '
                 'namespace), and its summary.json'),
           doc=("directory (local or `gs://`): `OUTPUT/JOB/summary.json` and the job's records, "
                'one file per namespace (see [Output files](output-files.md))'),
           template=Param('Output directory',
                          help=("Cloud Storage directory for OUTPUT/JOB/summary.json and the job's"
                                ' records, e.g. gs://my-bucket/mapper.'),
                          regex='^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9](/.*)?$')),
    Option('output_mode',
           help=("when OUTPUT/JOB already holds a complete run's output: refuse (default) stops at"
                 ' launch; replace removes it first, so old and new files never mix. After a '
                 'failed run: resume reads only the namespaces it did not complete (the leftovers '
                 'of a failed run are cleared in the other modes)'),
           doc=("when `OUTPUT/JOB` holds a complete run's output: `refuse` stops at launch, naming"
                ' the path; `replace` removes it first. After a failed run: `resume` reads only '
                'the namespaces it did not complete (see [Failures and exit '
                'codes](failures.md#resume))'),
           default='refuse',
           choices=('refuse', 'replace', 'resume'),
           template=Param('When the output exists',
                          help=("When OUTPUT/JOB already holds a complete run's output: refuse "
                                '(default) stops at launch; replace removes it first. resume, '
                                'after a failed run, reads only the namespaces it did not '
                                'complete.'),
                          regex='^(refuse|replace|resume)$')),
    Option('allow_nonempty_output',
           help=('let --output be a non-empty directory that holds no earlier output of this tool '
                 "(refused by default: the job's files would land among someone else's); "
                 "OUTPUT/JOB itself must still hold only this tool's files (default false)"),
           doc=('let `--output` be a non-empty directory that holds no earlier output of this tool'
                ' (see [Output files](output-files.md))'),
           default=False,
           kind=FLAG,
           template=Param('Allow a non-empty output location',
                          help=('true: let output be a non-empty location that holds no earlier '
                                'output of this tool; false (default): refused there. OUTPUT/JOB '
                                "itself must hold only this tool's files in either case."),
                          regex='^(true|false)$')),
    Option('job_file',
           help=("also write OUTPUT/JOB/all.jsonl, every namespace's records in one file (default "
                 'false)'),
           doc="also write `OUTPUT/JOB/all.jsonl`, every namespace's records in one file",
           default=False,
           kind=FLAG,
           field='output.job_file',
           template=Param('One file for the whole job',
                          help=("true: also write OUTPUT/JOB/all.jsonl, every namespace's records "
                                'in one file; false (default): one file per namespace only.'),
                          regex='^(true|false)$')),
    Option('database',
           help='a named Datastore database (default: the default database)',
           doc='a named Datastore database',
           shown='default database',
           template=Param('Database',
                          help=('A named Datastore (Firestore in Datastore mode) database id, e.g.'
                                ' my-db. Empty: the default database.'),
                          regex='^[a-z][a-z0-9-]{2,61}[a-z0-9]$')),
    Option('read_time',
           help=("read a consistent snapshot as of this RFC 3339 time, or 'start' for the moment "
                 'the run starts (Datastore keeps 1 hour, 7 days with point-in-time recovery)'),
           doc='`start` or an RFC 3339 time: every query of the run reads that snapshot',
           type=read_time_value,
           default=None,
           template=Param('Read time',
                          help=("Read a consistent snapshot: 'start' (when the run starts) or an "
                                'RFC 3339 time with a zone, e.g. 2026-11-27T12:00:00Z. Datastore '
                                'keeps 1 hour (7 days with point-in-time recovery).'),
                          regex='^(start|[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2}))$')),
    Option('key_order',
           help=('how the backend orders strings in keys: utf8 (Datastore), utf16 (the emulator); '
                 'auto picks by --emulator_host'),
           doc='how strings in keys sort: `utf8` (Datastore), `utf16` (emulator)',
           default='auto',
           choices=('auto', 'utf8', 'utf16'),
           template="auto picks Datastore's (utf8) order on Dataflow; utf16 is the emulator's"),
    Option('emulator_host',
           help=('host:port of the Datastore emulator (default: $DATASTORE_EMULATOR_HOST); workers'
                 ' use it too'),
           doc=('the emulator, for the launcher and the workers (the option wins over the '
                'variable)'),
           shown='`$DATASTORE_EMULATOR_HOST`',
           env='DATASTORE_EMULATOR_HOST',
           template='the Datastore emulator is for local runs and tests, not Dataflow'),
    Option('datastore_deadline',
           help=('seconds to keep retrying a Datastore call on transient errors or silence '
                 '(default 300); the launch checks use at most 20 until Datastore has answered '
                 'once'),
           doc='seconds to keep retrying a Datastore call on transient errors or silence',
           type=seconds(86_400),
           default=300.0,
           template=Param('Datastore retry deadline (seconds)',
                          help=('Seconds to keep retrying a Datastore call on transient errors or '
                                'silence (default 300).'),
                          regex='^([1-9][0-9]*(\\.[0-9]+)?|0?\\.[0-9]*[1-9][0-9]*)$')),
    Option('datastore_call_timeout',
           help=('seconds one Datastore call may take before it is abandoned and retried (default '
                 '60); the launch checks use at most 8'),
           doc=('seconds one Datastore call may take before it is abandoned and retried (the '
                'launch checks: at most 8, and at most 20 s in all until Datastore has answered '
                'once, never more than `--datastore_deadline`)'),
           type=seconds(3600),
           default=60.0,
           template=Param('Datastore call timeout (seconds)',
                          help=('Seconds one Datastore call may take before it is abandoned and '
                                'retried (default 60).'),
                          regex='^([1-9][0-9]*(\\.[0-9]+)?|0?\\.[0-9]*[1-9][0-9]*)$')),
    Option('max_errors',
           help=('entities the job may fail on (or whose records cannot be written) before the run'
                 ' fails; each goes to the dead-letter file (default 0: the first one fails the '
                 'run, once it is written down)'),
           doc=('entities the job may fail on (or whose records cannot be written) before the run '
                'fails; each is a line of the dead-letter file'),
           type=whole_number(0, 1_000_000_000),
           default=0,
           field='job.max_errors',
           template=Param('Entities the job may fail on',
                          help=('Entities the job may fail on before the run fails; each goes to '
                                'the dead-letter file (default 0).'),
                          regex='^(0|[1-9][0-9]*)$')),
    Option('dead_letter',
           help=('file (local or gs://) for the entities the job failed on and the rows BigQuery '
                 'rejected, with the errors, as JSON lines (default OUTPUT/JOB/dead_letter.jsonl; '
                 'needs --output then)'),
           doc=('the dead-letter file (local or `gs://`): failed entities and rejected BigQuery '
                'rows (`--bigquery_dead_letter` is the same option)'),
           shown='`OUTPUT/JOB/dead_letter.jsonl`',
           aliases=('bigquery_dead_letter',),
           template=Param('Dead-letter file',
                          help=('gs:// file for the entities the job failed on and the rows '
                                'BigQuery rejected, with the errors, as JSON lines (default '
                                'OUTPUT/JOB/dead_letter.jsonl).'),
                          regex='^gs://[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]/.*[^/]$')),
    Option('progress_seconds',
           help='how often each worker logs its progress (0: never; default 5)',
           doc='how often a plain progress line is printed (0: none; a terminal gets a live bar)',
           type=seconds(3600, zero=True),
           default=5.0,
           field='read.progress_seconds',
           template='how often workers log progress: a debugging knob'),
    Option('wait',
           help=('on a remote runner (Dataflow): wait for the job to end, printing its progress '
                 'from its metrics every --progress_seconds (at least 10 s), then its summary; the'
                 " exit code is the job's (default false: return once launched; a local run always"
                 ' waits)'),
           doc=('on Dataflow: wait for the job to end, printing its progress lines from its '
                'metrics (every `--progress_seconds`, at least 10 s), then its summary; the exit '
                "code is the job's (a local run always waits)"),
           default=False,
           kind=FLAG,
           template=('the launcher must not block: the Dataflow console follows the job (the same '
                     'progress counters)')),
    Option('discard_records',
           help=('run a job that yields records without keeping them: counted, written nowhere '
                 '(default false: a job that yields records needs --output or --bigquery_table)'),
           doc=('run a job that yields records without keeping them: counted, written nowhere '
                '(without it, a job that yields records needs `--output` or `--bigquery_table`)'),
           default=False,
           kind=FLAG,
           field='output.discard_records',
           template=Param("Discard the job's records",
                          help=('true: run a job that yields records without keeping them (counted'
                                ' in the summary, written nowhere); false (default): a job that '
                                'yields records needs output or bigquery_table.'),
                          regex='^(true|false)$')),
    Option('allow_empty_kind',
           help=('run even when the kind has no entities (default false: a typo in the kind is an '
                 'error)'),
           doc='run even if the kind (a listed kind; any kind, for `kind=*`) has no entities',
           default=False,
           kind=FLAG,
           template=Param('Allow an empty kind',
                          help=('true: run even when the kind has no entities; false (default): a '
                                'typo in the kind is an error.'),
                          regex='^(true|false)$')),
    Option('bigquery_table',
           help=("stream the job's records into this BigQuery table: [PROJECT:]DATASET.TABLE; "
                 '{namespace} in TABLE makes one table per namespace (escaped: see docs/stream-'
                 'bigquery.md)'),
           doc=('stream the records into BigQuery: `[PROJECT:]DATASET.TABLE`, `{namespace}` and '
                '`{kind}` allowed (see [Stream into BigQuery](stream-bigquery.md))'),
           type=bigquery_table_value,
           default=None,
           template=Param('BigQuery table',
                          help=("Stream the job's records into this BigQuery table: "
                                'PROJECT:DATASET.TABLE, PROJECT.DATASET.TABLE or DATASET.TABLE '
                                "(the run's project), e.g. my-project:mapper.orders. {namespace} "
                                'in TABLE makes one table per namespace (escaped: acme.eu -> '
                                'acme_2eeu, the default namespace -> __default__), {kind} one per '
                                'kind (needed when whole entities of several kinds are streamed). '
                                'Empty: no BigQuery output.'),
                          regex='^((([a-z0-9.-]+:)?[a-z]([a-z0-9-]{0,61}[a-z0-9])?:)|([a-z]([a-z0-9-]{0,61}[a-z0-9])?\\.))?[A-Za-z0-9_]{1,1024}\\.(?!.*\\{namespace\\}.*\\{namespace\\})(?!.*\\{kind\\}.*\\{kind\\})([A-Za-z0-9_-]|\\{namespace\\}|\\{kind\\}){1,1024}$')),
    Option('bigquery_create',
           help="create the dataset and table when missing, with the job's schema (default true)",
           doc='create the dataset and table when missing',
           default=True,
           kind=FLAG,
           template=Param('Create the BigQuery table',
                          help=('true (default): create the dataset and table when missing, with '
                                "the job's schema; false: they must exist."),
                          regex='^(true|false)$')),
    Option('bigquery_write_disposition',
           help='append (default) to the table, or require it to be empty at launch',
           doc='or `empty`: refuse a table holding rows',
           default='append',
           choices=('append', 'empty'),
           template=Param('When the BigQuery table holds rows',
                          help=('append (default): add rows to the table; empty: stop at launch '
                                'unless the table is empty (or missing).'),
                          regex='^(append|empty)$')),
    Option('bigquery_max_bad_rows',
           help='fail the run when BigQuery rejects more rows than this (default 0)',
           doc='fail the run when more rows are rejected',
           type=whole_number(0, 1_000_000_000),
           default=0,
           template=Param('Rejected rows allowed',
                          help=('Fail the run when BigQuery rejects more rows than this. Default '
                                '0.'),
                          regex='^(0|[1-9][0-9]*)$')),
    Option('bigquery_schema_sample',
           help=('entities read at launch to make the table schema of a job that streams whole '
                 'entities (default 1000)'),
           doc="entities sampled at launch for `stream_entities`' schema",
           type=whole_number(1, 100_000),
           default=1000,
           template=Param('Entities sampled for the schema',
                          help=('Entities read at launch to make the table schema of a job that '
                                'streams whole entities. Default 1000.'),
                          regex='^[1-9][0-9]*$')),
    Option('bigquery_deadline',
           help=('seconds to keep retrying a BigQuery request on transient errors (default 120); '
                 'the launch checks use at most 20 until BigQuery has answered once'),
           doc='seconds of retries on transient BigQuery errors',
           type=seconds(86_400),
           default=120.0,
           template=Param('BigQuery retry deadline (seconds)',
                          help=('Seconds to keep retrying a BigQuery request on transient errors. '
                                'Default 120; the launch checks use at most 20 until BigQuery has '
                                'answered once.'),
                          regex='^([1-9][0-9]*(\\.[0-9]+)?|0?\\.[0-9]*[1-9][0-9]*)$')),
    Option('bigquery_emulator_host',
           help=('host:port of a BigQuery emulator (default: $BIGQUERY_EMULATOR_HOST); no '
                 'credentials are used then'),
           doc='a BigQuery emulator, no credentials',
           shown='`$BIGQUERY_EMULATOR_HOST`',
           env='BIGQUERY_EMULATOR_HOST',
           template='the BigQuery emulator is for local runs and tests, not Dataflow'),
    Option('launch_checks',
           help='check namespaces, kind and indexes before launching (default true)',
           doc='check namespaces, kind and indexes before launching',
           default=True,
           kind=FLAG,
           template=Param('Checks before launch',
                          help=('true (default): check namespaces, kind and indexes before '
                                'launching; false: skip them.'),
                          regex='^(true|false)$')),
    Option('writes',
           help=('how a job that writes back writes: dry_run (the default: read everything, count '
                 'and sample what would change, write nothing), transactional (each batch looked '
                 'up again and changed in a transaction: no concurrent update is lost) or blind '
                 '(what the job made of what was read: cheaper, the last writer wins)'),
           doc=('how a job that writes back writes: `dry_run` (count and sample what would change,'
                ' write nothing), `transactional` (each batch looked up again and changed in a '
                'transaction) or `blind` (cheaper; the last writer wins)'),
           shown='`dry_run`',
           choices=('dry_run', 'transactional', 'blind'),
           writes=True,
           template=Param('Write back (jobs that migrate or write)',
                          help=('How a job that writes back to Datastore writes: dry_run (the '
                                'default: read everything, count and sample what would change, '
                                'write nothing), transactional (each batch looked up again and '
                                'changed in a transaction: no concurrent update is lost) or blind '
                                '(cheaper, the last writer wins).'),
                          regex='^(dry_run|transactional|blind)$')),
    Option('undo_log',
           help=('write every entity changed or deleted, as it was, to OUTPUT/JOB/runs/RUN/undo/ '
                 'before its commit (default true; writing for real needs --output then; false: no'
                 ' way back)'),
           doc=('write every entity changed or deleted, as it was, to `OUTPUT/JOB/runs/RUN/undo/` '
                'before its commit (writing for real then needs `--output`; false: no way back)'),
           default=True,
           kind=FLAG,
           writes=True,
           template=Param('Undo log',
                          help=('true (default): every entity changed or deleted is written, as it'
                                ' was, to OUTPUT/JOB/runs/RUN/undo/ before its commit (needs '
                                'output); false: no way back.'),
                          regex='^(true|false)$')),
    Option('write_batch',
           help="mutations per blind commit (default 500, Datastore's limit)",
           doc="mutations per blind commit (Datastore's limit)",
           type=whole_number(1, 500),
           default=500,
           writes=True,
           field='write.batch',
           template=Param('Mutations per blind commit',
                          help='Mutations per blind commit, 1 to 500 (default 500).',
                          regex='^([1-9]|[1-9][0-9]|[1-4][0-9][0-9]|500)$')),
    Option('transaction_groups',
           help=('entity groups per transaction (default 25: the emulator refuses more; production'
                 ' takes up to 500)'),
           doc=('entity groups per transaction (the emulator refuses more; production takes up to '
                '500)'),
           type=whole_number(1, 500),
           default=25,
           writes=True,
           field='write.transaction_groups',
           template=Param('Entity groups per transaction',
                          help='Entity groups per transaction, 1 to 500 (default 25).',
                          regex='^([1-9]|[1-9][0-9]|[1-4][0-9][0-9]|500)$')),
    Option('max_write_rate',
           help='cap on writes per second for the whole job (default: none)',
           doc='cap on writes per second for the whole job',
           type=positive_float,
           default=None,
           writes=True,
           field='write.max_rate',
           template=Param('Maximum writes per second',
                          help=('Cap on writes per second for the whole job (default: none; the '
                                'ramp-up applies on Dataflow).'),
                          regex='^([1-9][0-9]*(\\.[0-9]+)?|0?\\.[0-9]*[1-9][0-9]*)$')),
    Option('write_rampup',
           help=('ramp writes up as Datastore advises (500/s for the job, +50%% every 5 minutes): '
                 'auto is on for remote runners, off against the emulator and for local runs'),
           doc=('ramp writes up as Datastore advises (500/s, +50 % every 5 minutes): `auto` is on '
                'for remote runners, off against the emulator; `on`, `off`'),
           default='auto',
           choices=('auto', 'on', 'off'),
           writes=True,
           template=Param('Write ramp-up',
                          help=('auto (default: on for Dataflow), on or off: start at 500 writes/s'
                                ' for the job, +50% every 5 minutes, as Datastore advises.'),
                          regex='^(auto|on|off)$')),
    Option('write_workers_hint',
           help=("how many workers share the ramp-up's budget (default: the local workers, or "
                 '--max_num_workers / --num_workers on Dataflow)'),
           doc="how many workers share the ramp-up's budget",
           shown='the local workers, or `--max_num_workers` / `--num_workers`',
           type=whole_number(1, 10_000),
           default=None,
           writes=True,
           template=Param('Workers sharing the write budget',
                          help=("How many workers share the ramp-up's budget (default: "
                                '--max_num_workers or --num_workers).'),
                          regex='^[1-9][0-9]{0,3}$')),
    Option('changes_sample',
           help='before/after pairs per namespace written to changes.jsonl (default 20)',
           doc='before/after pairs per namespace written to `changes.jsonl` by a dry run',
           type=whole_number(0, 10_000),
           default=20,
           writes=True,
           field='write.changes_sample',
           template=Param('Before/after samples per namespace',
                          help=('Before/after pairs per namespace written to changes.jsonl '
                                '(default 20).'),
                          regex='^(0|[1-9][0-9]{0,3}|10000)$')),
)

#: The options a console user does not get, and why (the template launcher refuses them).
NOT_IN_TEMPLATE = {o.name: o.template for o in OPTIONS if isinstance(o.template, str)}

#: The Flex Template's own name and description (``metadata.json``).
TEMPLATE_NAME = "datastore-mapper"
TEMPLATE_DESCRIPTION = (
    "Run a registered mapper job over every entity of a Datastore (Firestore in Datastore "
    "mode) kind, across all namespaces, each namespace split into key ranges read in parallel. "
    "Writes OUTPUT/JOB/summary.json and the job's records, one file per namespace, as "
    "OUTPUT/JOB/namespaces/NAMESPACE.jsonl (__default__.jsonl for the default namespace).")


def add_mapper_arguments(parser) -> None:
    """Add the mapper's own options to an argparse parser (ours, or Beam's)."""
    groups = {False: parser.add_argument_group("datastore-mapper"),
              True: parser.add_argument_group(
                  "writing back to Datastore (jobs that migrate or write)")}
    for o in OPTIONS:
        groups[o.writes].add_argument(f"--{o.name}", *(f"--{a}" for a in o.aliases),
                                      **o.argparse_kwargs())


def config_fields(options: Any, section: str) -> dict:
    """The ``RunConfig`` fields of ``section`` (``job``, ``read``, ``output``, ``write``) that
    options fill as given, from parsed ``options``: ``{field: value}``."""
    out = {}
    for o in OPTIONS:
        where, _, field = o.field.partition(".")
        if where == section:
            out[field] = getattr(options, o.name)
    return out


def template_metadata() -> dict:
    """``metadata.json``: the Flex Template's parameters, in the table's order."""
    params = []
    for o in OPTIONS:
        if isinstance(o.template, Param):
            params.append({"name": o.name, "label": o.template.label,
                           "helpText": o.template.help, "isOptional": o.template.optional,
                           "regexes": [o.template.regex]})
    return {"name": TEMPLATE_NAME, "description": TEMPLATE_DESCRIPTION, "parameters": params}


def metadata_text() -> str:
    return json.dumps(template_metadata(), indent=2, ensure_ascii=False) + "\n"


def docs_table(writes: bool) -> str:
    """A Markdown table of the options (the write-back ones, or the others): option, default,
    meaning."""
    rows = ["| option | default | meaning |", "| --- | --- | --- |"]
    for o in OPTIONS:
        if o.writes == writes:
            meaning = (o.doc or o.help).replace("%%", "%")
            rows.append(f"| `--{o.name}` | {o.shown_default()} | {meaning} |".replace("|  |", "| |"))
    return "\n".join(rows) + "\n"


#: Where the generated tables go in the docs page: between these markers.
DOCS_MARKERS = {False: ("<!-- options: generated by python -m pipeline.launch.options --write -->",
                        "<!-- /options -->"),
                True: ("<!-- write options: generated by python -m pipeline.launch.options "
                       "--write -->", "<!-- /write options -->")}


def docs_page(text: str) -> str:
    """The docs page ``text`` with its generated tables made anew."""
    for writes, (start, end) in DOCS_MARKERS.items():
        head, found, rest = text.partition(start)
        if not found:
            raise ValueError(f"the docs page lacks the marker {start!r}")
        _, found, tail = rest.partition(end)
        if not found:
            raise ValueError(f"the docs page lacks the marker {end!r}")
        text = head + start + "\n\n" + docs_table(writes) + "\n" + end + tail
    return text


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


# --- what the command line alone decides -------------------------------------------------------

def project_and_job(project: Optional[str], emulator_host: Optional[str], job: Optional[str],
                    shards: int, oversampling: int,
                    job_modules: Sequence[str]) -> tuple[str, Type[JobSpec]]:
    """(the project, the job's class), or a UsageError naming what is missing or wrong."""
    if not project and emulator_host:  # what `datastore-mapper emulator` says to export
        project = os.environ.get("DATASTORE_PROJECT_ID") or None
    if not project:
        raise UsageError("--project is required (the Google Cloud project; any id works with "
                         "the emulator, and $DATASTORE_PROJECT_ID is the default there)")
    if not job:
        raise UsageError("--job is required; --list_jobs shows the registered jobs")
    if shards * oversampling > MAX_SAMPLES:
        raise UsageError(f"--shards {shards} x --oversampling {oversampling} = "
                         f"{shards * oversampling} scatter keys per namespace: at most "
                         f"{MAX_SAMPLES} are sampled; lower one of them")
    load_modules(job_modules)
    return project, get_job(job)


# --- every option known: the mapper's and Beam's -------------------------------------------------

def beam_parser():
    """The parser Beam itself builds in ``get_all_options``: every options class defined so far
    (all of Beam's; the mapper's once ``pipeline.launch.resolve`` is imported), no abbreviations.
    Imports Beam: for the table and its test."""
    import apache_beam  # noqa: F401  (every options class Beam defines)
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    classes = {str(cls): cls for cls in PipelineOptions.__subclasses__()}
    for cls in classes.values():
        cls._add_argparse_args(parser)  # pylint: disable=protected-access
    return parser


def table_of(parser) -> dict:
    """{option: how many values it takes}: 0 (a flag), "?" (one, optional) or 1."""
    out = {}
    for action in parser._actions:  # noqa: SLF001
        for name in action.option_strings:
            if name.startswith("--") and name != "--help":
                out[name] = 0 if action.nargs == 0 else ("?" if action.nargs == "?" else 1)
    return dict(sorted(out.items()))


def mapper_table() -> dict:
    """The mapper's own options, as ``table_of`` shows them: a flag takes a value or none."""
    return {f"--{name}": "?" if o.kind == FLAG else 1
            for o in OPTIONS for name in (o.name, *o.aliases)}


#: Beam's options and how many values each takes (``beam_table``): generated.
BEAM_OPTIONS_FILE = pathlib.Path(__file__).with_name("beam_options.json")


@functools.lru_cache(maxsize=None)
def beam_table() -> dict:
    """Beam's options, as ``table_of`` shows them (not the mapper's), from ``beam_options.json``."""
    return json.loads(BEAM_OPTIONS_FILE.read_text(encoding="utf-8"))["options"]


def beam_table_text() -> str:
    """``beam_options.json`` from the installed Beam's parser (the mapper's options left out)."""
    mapper = mapper_table()
    table = {k: v for k, v in table_of(beam_parser()).items() if k not in mapper}
    about = ("Generated by python -m pipeline.launch.options --write from Beam's parser: every "
             "option it knows (not the mapper's: those are the option table's) and how many "
             'values it takes: 0 (a flag), "?" or 1.')
    return json.dumps({"about": about, "options": table}, indent=1) + "\n"


def known_table() -> dict:
    """Every option a run knows, Beam's and the mapper's, and how many values it takes."""
    return {**beam_table(), **mapper_table()}


def known_parser() -> argparse.ArgumentParser:
    """A parser that knows the names (and arities) of Beam's parser, without Beam."""
    parser = argparse.ArgumentParser(allow_abbrev=False, add_help=False)
    for i, (name, nargs) in enumerate(known_table().items()):
        if nargs == 0:
            parser.add_argument(name, dest=f"o{i}", action="store_true")
        else:
            parser.add_argument(name, dest=f"o{i}", nargs="?" if nargs == "?" else None)
    return parser


def option_names() -> list[str]:
    return sorted(known_table())


def closest(name: str, names: Sequence[str]) -> Optional[str]:
    """The known option most like ``name`` (``--shard`` -> ``--shards``), or None."""
    found = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return found[0] if found else None


def unknown_arguments(argv: Sequence[str]) -> list[str]:
    """What neither the mapper nor Beam knows in ``argv`` (an option's bad value is not
    reported here: Beam's parse reports it, ``launcher.check_beam_options``)."""
    argv = [a for a in argv if a not in ("-h", "--help")]
    try:
        _, unknown = known_parser().parse_known_args(argv)
    except SystemExit:  # a value missing: reported, with its message, by the options check
        return []
    return unknown


def check_known_options(argv: Sequence[str]) -> None:
    """Refuse (a UsageError, one line) the first argument nobody knows, naming the closest
    option."""
    unknown = unknown_arguments(argv)
    if not unknown:
        return
    first = unknown[0]
    if not first.startswith("-"):
        raise UsageError(f"unexpected argument {first!r}: options are --name=value or --name "
                         "value (--help lists the mapper's options; Beam's are accepted too)")
    name = first.split("=", 1)[0]
    near = closest(name, option_names())
    hint = f"; did you mean {near}?" if near else ""
    raise UsageError(f"unknown option {name}{hint} (--help lists the mapper's options; every "
                     "Beam option is accepted too; no abbreviations)")


# --- the generated files -------------------------------------------------------------------------

def _write_generated(check: bool) -> int:
    """Make ``metadata.json`` and the option tables of ``docs/options.md`` anew from the table,
    and ``beam_options.json`` from the installed Beam's parser (``check``: only say which is
    stale)."""
    root = pathlib.Path(__file__).resolve().parents[2]
    stale = []
    for path, make in ((root / "metadata.json", lambda _old: metadata_text()),
                       (root / "docs" / "options.md", docs_page),
                       (BEAM_OPTIONS_FILE.resolve(), lambda _old: beam_table_text())):
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        new = make(old)
        if new != old:
            stale.append(str(path.relative_to(root)))
            if not check:
                path.write_text(new, encoding="utf-8")
    if stale:
        print(("stale: " if check else "written: ") + ", ".join(stale))
    return 1 if stale and check else 0


if __name__ == "__main__":
    if sys.argv[1:] not in (["--write"], ["--check"]):
        sys.exit("usage: python -m pipeline.launch.options --write | --check")
    sys.exit(_write_generated(sys.argv[1] == "--check"))
