"""Tools the tests start and stop: as from a terminal (Ctrl-C's signal at its default in the
child), and their process trees, found and stopped.

A test session started in the background of a script inherits SIGINT ignored (the shell does
that for background jobs), and a child keeps an ignored signal ignored across ``exec``: the tool
would never see the Ctrl-C a test sends. Not with ``preexec_fn``: it makes ``subprocess`` fork
(not vfork) a process whose gRPC threads' fork handlers then run in the child (seen under load:
the child died before ``exec`` with "epoll_wait error: Bad file descriptor", printing nothing).
A small trampoline sets SIGINT to its default and ``exec``s the command instead.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

_TRAMPOLINE = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "os.execvp(sys.argv[1], sys.argv[1:])")


def as_in_a_terminal(argv: Sequence[str]) -> list:
    """``argv`` (found on the child's PATH) run with SIGINT at its default."""
    return [sys.executable, "-c", _TRAMPOLINE, *argv]


def alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def descendants(pid: int) -> set:
    """Every process below ``pid`` (children, their children, ...)."""
    kids: dict = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            kids.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for k in kids.get(todo.pop(), ()):
            out.add(k)
            todo.append(k)
    return out


def stop_tree(proc: subprocess.Popen, sig: int) -> tuple:
    """Signal a tool that runs a child process tree (an emulator); (exit code, stdout, stderr,
    pids of its tree still alive 10 s after it exited). A tool that does not exit within 60 s
    is killed with its tree, so a failed test leaves nothing behind."""
    tree = descendants(proc.pid)
    assert tree, "the tool runs a child process tree"
    proc.send_signal(sig)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        for pid in [proc.pid, *tree]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        raise
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(p) for p in tree):
        time.sleep(0.1)
    return proc.returncode, out, err, [p for p in tree if alive(p)]
