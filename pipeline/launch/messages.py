"""The CLI's own lines on stderr and its exit codes, shared by the CLI's light first part
(``cli``) and the launcher (``launcher``).

Terminal-safe (``pipeline.core.terminal``): a message is one line whatever the data in it (its
control characters, line feeds included, escaped); only a ``MapperError``'s ``detail`` (our
own ``index.yaml`` block) adds lines."""
from __future__ import annotations

import re
import sys
from typing import Optional

from pipeline.core import terminal
from pipeline.errors import MapperError
from pipeline.launch import logs

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
        return None
    msg, step = matches[-1]
    return terminal.escape(msg.strip() + (f" (in step {step})" if step else ""))


def say(line: str) -> None:
    """A line of the CLI's own on stderr, its secrets redacted (``logs.redact``) and its
    control characters but line feeds escaped (``terminal.escape_lines``)."""
    print(terminal.escape_lines(logs.redact(line)), file=sys.stderr)


def show(text: str) -> None:
    """Text of the CLI's own on stdout (the summary, the line naming its files), its control
    characters but line feeds escaped (the data in it is escaped already)."""
    print(terminal.escape_lines(text))


def error(message: str) -> None:
    """The CLI's final ``error:`` line, secrets redacted (a message may go on over more lines,
    such as the index.yaml entry to add, but only its first starts with ``error:``)."""
    say(f"error: {message}")

