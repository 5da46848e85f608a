"""What the CLI writes to the terminal: its own lines and exit codes, and readable logs for
local runs, their level, and no secrets in any of them.

**The CLI's own lines** (``say``, ``show``, ``error``) and its exit codes (``EXIT_*``), shared by
the CLI's light first part (``cli``) and the launcher (``launcher``): terminal-safe
(``pipeline.core.terminal``), a message is one line whatever the data in it (its control
characters, line feeds included, escaped); only a ``MapperError``'s ``detail`` (our own
``index.yaml`` block) adds lines. ``failure_message`` finds our own error inside whatever a
runner wrapped it in.

Worker processes of the local runner send their log records to the runner,
which prints each as ``Worker: <log entry protobuf>``. ``WorkerLogFilter`` turns those
back into plain lines, keeps the mapper's own INFO records (progress, plans,
summary) and warnings, and drops Beam's start-up noise.

**Level.** ``configure()`` reads ``DATASTORE_MAPPER_LOG_LEVEL``: ``DEBUG``, ``INFO`` (the
default) or ``WARNING`` sets the level of the mapper's own loggers (``pipeline``, ``jobs``,
a job module's: everything but the third-party libraries); the third-party loggers
(``apache_beam``, ``google``, ``urllib3``, ``grpc`` and a few more, :data:`THIRD_PARTY`) stay
at WARNING even with ``DEBUG``. ``DEBUG-ALL`` puts every logger, third-party ones too, at
DEBUG (and keeps the workers' own INFO records). Any other value is warned about and
read as INFO. The level applies to the launching process, which prints the records the
local workers send it (at INFO and above: Beam's workers log at INFO).

**Secrets.** ``RedactingFilter``, installed on the root logger's handlers, rewrites every
record before it is written: the message and its arguments, an exception's traceback, a
stack. ``redact()`` (also used for the CLI's final ``error:`` line) replaces PEM private
keys (``-----BEGIN ... PRIVATE KEY-----`` to its END line), OAuth access tokens (``ya29.``),
the values of ``refresh_token``, ``client_secret``, ``private_key`` and ``private_key_id`` in
JSON-like text (``"name": "value"``, ``'name': 'value'``, ``name=value``) and bearer tokens
(``Authorization: Bearer ...``) with ``[REDACTED]``.

**Ctrl-C.** From the moment the launcher gets SIGINT (``interrupted()``) Beam's records are
dropped (``InterruptedFilter``), as are the workers' tracebacks of their own KeyboardInterrupt:
the CLI's one ``interrupted:`` line says what happened. While ``worker_stderr_to`` holds the
workers' log, an exception that ends a thread of this process goes there, not to the terminal.
"""
from __future__ import annotations

import codecs
import contextlib
import logging
import os
import re
import sys
import threading
import traceback
from typing import Iterator, Optional

from pipeline.core import terminal
from pipeline.core.summary import PRINTED_BY_THE_CLI
from pipeline.errors import MapperError

LEVEL_ENV = "DATASTORE_MAPPER_LOG_LEVEL"
DEBUG_ALL = "DEBUG-ALL"
LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING}
#: Third-party loggers: at WARNING whatever the mapper's level, unless DEBUG-ALL.
THIRD_PARTY = ("apache_beam", "google", "google_auth_httplib2", "urllib3", "requests",
               "httplib2", "grpc", "charset_normalizer", "asyncio")
REDACTED = "[REDACTED]"

_WORKER_LOGGER = "apache_beam.runners.portability.local_job_service"
_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')
_LOCATION = re.compile(r'log_location: "((?:[^"\\]|\\.)*)"')
#: Beam's start-up warning; the summary a worker logs and the traceback of a bundle that
#: failed (the CLI prints both itself, the failure as one clear line).
_NOISE = ("semi_persistent_directory", "summary:\n", "Error processing instruction")


def _unescape(text: str) -> str:
    """The message of a worker's log entry, as protobuf's text format escaped it: non-ASCII
    arrives either as octal escapes of its UTF-8 bytes (``\\303\\274``) or already as text
    (``ü``, ``データ``); both come back as the text they were."""
    try:
        raw = text.encode("utf-8")  # text that is already Unicode stays as it is
        return codecs.escape_decode(raw)[0].decode("utf-8")
    except Exception:  # keep the raw text rather than lose the line
        return text


class WorkerLogFilter(logging.Filter):
    """``Worker: <log entry>`` -> ``worker: <its message>``; drops Beam's noise and, unless
    ``keep_all``, the workers' records below WARNING that are not the mapper's own."""

    def __init__(self, keep_all: bool = False) -> None:
        super().__init__()
        self.keep_all = keep_all

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != "Worker: %s" or not record.args:
            return True
        entry = str(record.args[0])
        m = _MESSAGE.search(entry)
        message = _unescape(m.group(1)) if m else entry
        if any(n in message for n in _NOISE) or _interrupted_worker(message):
            return False
        loc = _LOCATION.search(entry)
        ours = bool(loc and ("/pipeline/" in loc.group(1) or "/jobs/" in loc.group(1)))
        if record.levelno < logging.WARNING and not ours and not self.keep_all:
            return False
        record.msg, record.args = "worker: %s", (message,)
        return True


def _interrupted_worker(message: str) -> bool:
    """A worker's traceback of the Ctrl-C it got too (the launcher reports the interruption)."""
    lines = message.rstrip().splitlines()
    return len(lines) > 1 and lines[-1].strip() == "KeyboardInterrupt"


_INTERRUPTED = threading.Event()


def interrupted(flag: bool = True) -> None:
    """From now on (``flag``) the records of Beam's loggers, the workers' included, are not
    written: the run was interrupted, the launcher is stopping the workers, and what Beam says
    about workers that went away is no news."""
    if flag:
        _INTERRUPTED.set()
    else:
        _INTERRUPTED.clear()


class InterruptedFilter(logging.Filter):
    """Installed on handlers: after ``interrupted()``, Beam's records are dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_INTERRUPTED.is_set() and record.name.startswith("apache_beam"))


# --- secrets ------------------------------------------------------------------------------

#: A PEM private key, to its END line (or, cut short, to the end of the quoted text).
_PEM = re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----.*?"
                  r"(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|(?=\\?[\"'])|\Z)", re.S)
#: The value of a secret field in JSON-ish text: "name": "value", 'name': 'value',
#: \"name\": \"value\" (JSON inside a string), name=value (a form body, a URL).
_FIELD = re.compile(
    r"""(?P<name>(?:\\?["'])?\b(?:refresh_token|client_secret|private_key_id|private_key)\b"""
    r"""(?:\\?["'])?\s*[:=]\s*)"""
    r"""(?P<value>\\"(?:(?!\\").)*(?:\\"|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z)|"""
    r"""'(?:[^'\\]|\\.)*(?:'|\Z)|[^\s,;&}\])'"]+)""", re.S | re.I)
#: OAuth 2 access tokens of Google (``ya29.`` then base64url text).
_ACCESS_TOKEN = re.compile(r"\bya29\.[0-9A-Za-z_\-.]+")
#: A bearer token, as an HTTP header or gRPC metadata shows it.
_BEARER = re.compile(r"(?i)\b(bearer\s+)[0-9A-Za-z_\-.~+/]{8,}=*")


def _field(m: "re.Match") -> str:
    value = m.group("value")
    for q in ('\\"', '"', "'"):
        if value.startswith(q):
            end = q if value.endswith(q) and len(value) >= 2 * len(q) else ""
            return f"{m.group('name')}{q}{REDACTED}{end}"
    return f"{m.group('name')}{REDACTED}"


def redact(text) -> str:
    """``text`` with the secrets it holds replaced by ``[REDACTED]`` (see the module's
    docstring for which)."""
    if not isinstance(text, str):
        text = str(text)
    if not text:
        return text
    text = _PEM.sub(REDACTED, text)
    text = _FIELD.sub(_field, text)
    text = _ACCESS_TOKEN.sub(REDACTED, text)
    return _BEARER.sub(lambda m: m.group(1) + REDACTED, text)


def terminal_message(record: logging.LogRecord) -> str:
    """The record's message, terminal-safe (``pipeline.core.terminal``): its arguments are data,
    so their control characters (line feeds included) are escaped; the format is ours, so a
    line feed in it stays. A record of the summary (``PRINTED_BY_THE_CLI``) carries text that
    ``format_summary`` escaped already: only its lines are kept."""
    fmt = record.msg if isinstance(record.msg, str) else str(record.msg)
    if getattr(record, PRINTED_BY_THE_CLI, False):
        return terminal.escape_lines(record.getMessage())
    if "\n" not in fmt or not record.args:
        text = record.getMessage()
        return terminal.escape(text) if "\n" not in fmt else terminal.escape_lines(text)
    args = record.args
    if isinstance(args, dict):
        args = {k: terminal.escape(v) if isinstance(v, str) else v for k, v in args.items()}
    else:
        args = tuple(terminal.escape(a) if isinstance(a, str) else a for a in args)
    return terminal.escape_lines(fmt % args)


class RedactingFilter(logging.Filter):
    """Installed on handlers: every record leaves with its secrets redacted (message and
    arguments, formatted once; an exception's traceback; a stack), and terminal-safe: the
    data in it with its control characters escaped (``terminal_message``)."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = terminal_message(record)
        except Exception:  # arguments that do not fit the format: keep both, redacted
            message = terminal.escape(f"{record.msg} {record.args!r}" if record.args
                                      else str(record.msg))
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = terminal.escape_lines(redact(record.exc_text))
        if record.stack_info:
            record.stack_info = terminal.escape_lines(redact(record.stack_info))
        return True


# --- level ---------------------------------------------------------------------------------


def level_setting(environ=None) -> tuple[int, bool, Optional[str]]:
    """(the mapper's level, whether third-party loggers are at DEBUG too, a warning about an
    unknown value or None), from ``DATASTORE_MAPPER_LOG_LEVEL``."""
    environ = os.environ if environ is None else environ
    raw = (environ.get(LEVEL_ENV) or "").strip()
    value = raw.upper()
    if not value:
        return logging.INFO, False, None
    if value == DEBUG_ALL:
        return logging.DEBUG, True, None
    if value in LEVELS:
        return LEVELS[value], False, None
    return logging.INFO, False, (f"{LEVEL_ENV}={raw!r} is not a log level: use DEBUG, INFO, "
                                 f"WARNING or {DEBUG_ALL}; logging at INFO")


def configure(environ=None) -> None:
    """Logging for the CLI: the level of ``DATASTORE_MAPPER_LOG_LEVEL`` (module docstring),
    readable worker lines, and every handler of the root logger redacting secrets."""
    level, everything, warning = level_setting(environ)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(message)s")
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        for kind in (InterruptedFilter, RedactingFilter):
            if not any(isinstance(f, kind) for f in handler.filters):
                handler.addFilter(kind())
    for noisy in THIRD_PARTY:
        logging.getLogger(noisy).setLevel(logging.DEBUG if everything else logging.WARNING)
    worker = logging.getLogger(_WORKER_LOGGER)
    worker.setLevel(min(level, logging.INFO))
    for f in [f for f in worker.filters if isinstance(f, WorkerLogFilter)]:
        worker.removeFilter(f)
    worker.addFilter(WorkerLogFilter(keep_all=everything))
    if warning:
        logging.getLogger(__name__).warning("%s", warning)


class _RunnerTracebacksToLog(logging.Filter):
    """While a local run goes on, Beam's own errors in this process (a worker that died, a
    channel closed) go to the workers' log with their tracebacks, not to the terminal: the CLI
    reports the failure as one line, naming that log. So does the summary step's record of
    the summary, which the CLI prints."""

    def filter(self, record: logging.LogRecord) -> bool:
        # The summary step's record of the summary, when the run is in this process: the CLI
        # prints the summary itself once the run ended (a worker process's goes to its log).
        summary = getattr(record, PRINTED_BY_THE_CLI, False)
        if summary or record.name.startswith("apache_beam") and (
                record.exc_info or record.levelno >= logging.ERROR):
            try:
                os.write(2, (logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
                             .format(record) + "\n").encode("utf-8", "replace"))
            except OSError:
                pass
            return False
        return True


@contextlib.contextmanager
def worker_stderr_to(path: str) -> Iterator[None]:
    """Send what local worker processes print to their stderr (Beam prints a job's
    failure there as a raw traceback, before the CLI reports it) to a file, with the runner's
    own tracebacks from this process, while this process's own logs and messages still
    reach the terminal. An exception that ends one of this process's threads (Beam's, when a
    worker goes away) goes to the file too."""
    sys.stderr.flush()
    saved_fd = os.dup(2)
    handlers = [h for h in logging.getLogger().handlers
                if isinstance(h, logging.StreamHandler) and _is_fd2(getattr(h, "stream", None))]
    old_stderr = sys.stderr
    terminal = None
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)  # made by RunDir.file
    try:
        os.dup2(fd, 2)
    finally:
        os.close(fd)
    to_log = _RunnerTracebacksToLog()
    saved_hook = threading.excepthook
    try:
        if _is_fd2(old_stderr):
            terminal = os.fdopen(os.dup(saved_fd), "w", buffering=1, encoding="utf-8",
                                 errors="replace")
            sys.stderr = terminal
            for h in handlers:
                h.setStream(terminal)
        for h in handlers:
            h.addFilter(to_log)
        threading.excepthook = _thread_exception_to_fd2
        yield
    finally:
        threading.excepthook = saved_hook
        for h in handlers:
            h.removeFilter(to_log)
        if terminal is not None:
            terminal.flush()
        os.dup2(saved_fd, 2)
        os.close(saved_fd)
        if terminal is not None:
            sys.stderr = old_stderr
            for h in handlers:
                h.setStream(old_stderr)
            terminal.close()


def is_interrupted() -> bool:
    return _INTERRUPTED.is_set()


def _thread_exception_to_fd2(args) -> None:
    """``threading.excepthook`` writing to file descriptor 2 (the workers' log, while
    ``worker_stderr_to`` holds it), not to ``sys.stderr`` (the terminal)."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "?"
    text = f"Exception in thread {name}:\n" + "".join(
        traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback))
    try:
        os.write(2, redact(text).encode("utf-8", "replace"))
    except OSError:
        pass


def _is_fd2(stream) -> bool:
    try:
        return stream is not None and stream.fileno() == 2
    except (AttributeError, OSError, ValueError):
        return False


# --- the CLI's own lines and exit codes ------------------------------------------------------

#: Exit codes: the run succeeded; it failed (on a worker, or past a limit); it was refused at
#: launch (bad input, unreachable services); it was interrupted (Ctrl-C).
EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_INTERRUPTED = 0, 1, 2, 130


def _our_error_names() -> set[str]:
    """MapperError and every subclass of it (DatastoreUnavailable, ComposeError, ...)."""
    names, todo = set(), [MapperError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def failure_message(err: BaseException) -> Optional[str]:
    """Our own error, found inside whatever a runner wrapped it in: one line, its control
    characters escaped (then the lines of a MapperError's ``detail``)."""
    text = str(err)
    if isinstance(err, MapperError):
        # A runner may re-raise our own error with " [while running 'STEP']" appended.
        text = str(err.args[0]) if err.args else ""
        m = re.match(r"(.*?)(?: \[while running '([^']+)'\])?$", text, flags=re.S)
        detail = err.detail
        return (terminal.escape(m.group(1).strip())
                + (f" (in step {terminal.escape(m.group(2))})" if m.group(2) else "")
                + (f"\n{terminal.escape_lines(detail)}" if detail else ""))
    # Not preceded by a word or a dot: click.exceptions.UsageError or BigQueryError are not ours.
    names = "|".join(sorted(_our_error_names()))
    matches = re.findall(r"(?<![\w.])(?:pipeline\.[\w.]+\.)?"
                         rf"(?:{names})"
                         r": (.+?)(?: \[while running '([^']+)'\])?$", text, flags=re.M)
    if not matches:
        return _service_failure(err, text)
    msg, step = matches[-1]
    return terminal.escape(msg.strip() + (f" (in step {step})" if step else ""))


def _service_failure(err: BaseException, text: str) -> Optional[str]:
    """A Google Cloud call's error that no step explained (the emulator answers UNKNOWN when
    it runs out of memory, say): one line naming the error and the step, not a traceback of
    the runner's (the workers' log keeps that). Any of google-api-core's error classes."""
    from google.api_core import exceptions as gexc
    text = f"{type(err).__module__}.{type(err).__name__}: {text}"  # a runner may re-raise it as is
    matches = [(name, msg, step) for name, msg, step in re.findall(
        r"(?<![\w.])google\.api_core\.exceptions\.(\w+): (.*?)"
        r"(?: \[while running '([^']+)'\])?$", text, flags=re.M)
        if isinstance(getattr(gexc, name, None), type)
        and issubclass(getattr(gexc, name), gexc.GoogleAPICallError)]
    if not matches:
        return None
    name, msg, step = matches[-1]
    msg = " ".join(msg.split())
    if msg in ("", "None"):  # the error's code (None for UNKNOWN) and an empty message
        msg = "no message"
    return terminal.escape(
        f"a Google Cloud call failed with {name} ({msg[:300]})"
        + (f" in step {step}" if step else "")
        + "; no step explains this error. On the Datastore emulator it is often the emulator "
        "itself failing (its log says why: out of memory, say, which "
        "DATASTORE_EMULATOR_JAVA_TOOL_OPTIONS=-Xmx2g gives `datastore-mapper emulator` more "
        "of); otherwise run again, and report it if it persists")


def say(line: str) -> None:
    """A line of the CLI's own on stderr, its secrets redacted (``redact``) and its
    control characters but line feeds escaped (``terminal.escape_lines``)."""
    print(terminal.escape_lines(redact(line)), file=sys.stderr)


def show(text: str) -> None:
    """Text of the CLI's own on stdout (the summary, the line naming its files), its control
    characters but line feeds escaped (the data in it is escaped already)."""
    print(terminal.escape_lines(text))


def error(message: str) -> None:
    """The CLI's final ``error:`` line, secrets redacted (a message may go on over more lines,
    such as the index.yaml entry to add, but only its first starts with ``error:``)."""
    say(f"error: {message}")
