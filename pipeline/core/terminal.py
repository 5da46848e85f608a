"""Terminal-safe text: what comes from the data (kind, namespace and property names, counter
names, values, parameters, paths) is shown on a terminal with its control characters escaped.

A kind named ``\\x1b]0;pwned\\x07`` would set the terminal's title, a value ``\\x1b[2J`` clear
the screen, a value ``\\nerror: fake`` print a line that looks like the CLI's own. Escaped, they
show as those very characters (``\\x1b]0;pwned\\x07``), one line, harmless.

Escaped: C0 controls (U+0000-U+001F: NUL, BEL, BS, TAB, LF, CR, ESC, ...) and DEL (U+007F),
the C1 controls (U+0080-U+009F: U+009B is a one-character CSI on some terminals), the bidi
embeddings, overrides and isolates (U+202A-U+202E, U+2066-U+2069: they reorder what follows
on screen) and the line and paragraph separators (U+2028, U+2029). Each becomes Python's
escape for it (``\\n``, ``\\r``, ``\\t``, ``\\x1b``, ``\\x9b``, ``\\u202e``). Backslashes are
left alone: escaping is idempotent, so text escaped twice (at two choke points) reads the same.

Pure functions, applied where text reaches the terminal (``pipeline.launch.logs`` for the
CLI's own lines and ``error:``, and its log handlers' filter; the printed
summary in ``pipeline.core.summary``), and a stream for what job code prints
(``TerminalSafeStream``: the launcher's stdout during a local run, a worker's while a hook
runs); files (JSONL, ``summary.json``, ``report.html``) keep the data as it is.
"""
from __future__ import annotations

import contextlib
import re
import sys
from typing import Any, Iterator

_OTHERS = "\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069"
#: Every character ``escape`` rewrites.
UNSAFE = re.compile(f"[\x00-\x1f{_OTHERS}]")
#: The same but the line feed (``escape_lines``).
_UNSAFE_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f{_OTHERS}]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _one(m: "re.Match") -> str:
    c = m.group(0)
    if c in _NAMED:
        return _NAMED[c]
    n = ord(c)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def escape(text: Any) -> str:
    """``text`` (made a str if it is not one) on one line, its control characters escaped."""
    if not isinstance(text, str):
        text = str(text)
    return UNSAFE.sub(_one, text)


def escape_lines(text: Any) -> str:
    """Like ``escape`` but keeping line feeds: for text whose lines are ours (a message with an
    ``index.yaml`` block, a traceback, the summary's table), the data in it already escaped."""
    if not isinstance(text, str):
        text = str(text)
    return _UNSAFE_BUT_NEWLINE.sub(_one, text)


def is_safe(text: str) -> bool:
    """Whether ``text`` needs no escaping."""
    return UNSAFE.search(text) is None


def escape_tree(value: Any) -> Any:
    """Every string in a JSON-like value (dict keys too) escaped; other values as they are."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, dict):
        return {escape_tree(k): escape_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(escape_tree(v) for v in value)
    return value


class TerminalSafeStream:
    """A text stream (stdout) whose writes reach the terminal escaped: line feeds too, but the
    one that ends a write (``print`` writes its values, then its ``end``), so a value printed
    is one line whatever the data in it."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        body, end = (text[:-1], "\n") if text.endswith("\n") else (text, "")
        self._stream.write(escape(body) + end)
        return len(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


@contextlib.contextmanager
def safe_stdout() -> Iterator[None]:
    """While the block runs (a job's hook, on a worker), ``sys.stdout`` is terminal-safe (a
    local run's worker processes print to the launcher's terminal)."""
    if isinstance(sys.stdout, TerminalSafeStream) or sys.stdout is None:
        yield
        return
    saved = sys.stdout
    sys.stdout = safe = TerminalSafeStream(saved)
    try:
        yield
    finally:
        if sys.stdout is safe:
            sys.stdout = saved
