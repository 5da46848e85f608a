"""Starting a tool as from a terminal: Ctrl-C's signal at its default in the child.

A test session started in the background of a script inherits SIGINT ignored (the shell does
that for background jobs), and a child keeps an ignored signal ignored across ``exec``: the tool
would never see the Ctrl-C a test sends. Not with ``preexec_fn``: it makes ``subprocess`` fork
(not vfork) a process whose gRPC threads' fork handlers then run in the child (seen under load:
the child died before ``exec`` with "epoll_wait error: Bad file descriptor", printing nothing).
A small trampoline sets SIGINT to its default and ``exec``s the command instead.
"""
from __future__ import annotations

import sys
from typing import Sequence

_TRAMPOLINE = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "os.execvp(sys.argv[1], sys.argv[1:])")


def as_in_a_terminal(argv: Sequence[str]) -> list:
    """``argv`` (found on the child's PATH) run with SIGINT at its default."""
    return [sys.executable, "-c", _TRAMPOLINE, *argv]
