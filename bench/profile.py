"""Where a run's CPU goes: one whole process under py-spy, its samples charged to owners.

    .venv/bin/python -m bench.profile [--entities 30000] [--rate 250]
        [--run count_by_property|export_entities|backup_entities|blind|transactional|peer|peer-text]

Starts its own emulator, seeds the bench's data set (``bench.bench``), and records one run with
``py-spy record --gil`` (only samples of a thread holding the GIL: our process's Python CPU, not
its waits). Each sample is charged to the innermost frame that belongs to an owner (imports,
our decoding and encoding, our graph, the job, Beam's harness and runner, the Datastore client,
gRPC and protobuf, ...); the standard library is charged to its caller. Prints the owners' shares
and the heaviest functions. Run it on a quiet machine; ``py-spy`` must be installed.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RUNS = {
    "count_by_property": ("count_by_property", ""),
    "export_entities": ("export_entities", ""),
    "backup_entities": ("backup_entities", ""),
    "blind": ("rename_property", "blind"),
    "transactional": ("rename_property", "transactional"),
    "peer": None,
    "peer-text": None,
}

#: (owner, pattern on a frame's file); the first that matches wins, innermost frame first (a
#: sample anywhere inside an import is the imports', ``owner_of``).
OWNERS = (
    ("ours: decode/encode", re.compile(r"pipeline/datastore/(decode|encode|pbjson)\.py")),
    ("ours: job", re.compile(r"(^|/)jobs/")),
    ("ours: sinks and files", re.compile(r"pipeline/sinks/")),
    ("ours: graph and the rest", re.compile(r"(^|/)pipeline/")),
    ("bench driver", re.compile(r"(^|/)bench/")),
    ("Beam: runner and harness", re.compile(r"apache_beam/(runners|transforms|pvalue|pipeline)")),
    ("Beam: coders", re.compile(r"apache_beam/coders")),
    ("Beam: io", re.compile(r"apache_beam/io")),
    ("Beam: other", re.compile(r"apache_beam/")),
    ("client: google-cloud-datastore", re.compile(r"google/cloud/datastore")),
    ("gRPC, protobuf, api_core", re.compile(r"(grpc|google/protobuf|google/api_core|proto/)")),
    ("other libraries", re.compile(r"site-packages/")),
)
FRAME = re.compile(r"^(?P<fn>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def owner_of(stack: list[str]) -> tuple[str, str]:
    """(owner, function) of one sample; ``stack`` root first, as py-spy's raw format has it."""
    if not stack:
        return "native code, no Python frame", "(holding the GIL outside Python)"
    if any("<frozen importlib" in f or "_find_and_load" in f for f in stack):
        return "imports", "importing modules"
    for frame in reversed(stack):
        m = FRAME.match(frame)
        file = m.group("file") if m else frame
        for owner, pat in OWNERS:
            if pat.search(file):
                fn = m.group("fn") if m else frame
                return owner, f"{fn} ({file.rsplit('site-packages/', 1)[-1]})"
    # Only the standard library (sampling without pausing can cut a stack short).
    return "standard library, no owner", stack[-1]


def tally(raw: Path) -> tuple[collections.Counter, collections.Counter, int]:
    owners: collections.Counter = collections.Counter()
    fns: collections.Counter = collections.Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack_text, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = [f for f in stack_text.split(";") if f and not f.startswith(("process ",
                                                                                "thread "))]
        owner, fn = owner_of(frames)
        owners[owner] += n
        fns[(owner, fn)] += n
        total += n
    return owners, fns, total


def command(run: str, out_dir: Path, namespaces: list[str]) -> list[str]:
    from bench.bench import KIND, PROJECT
    from pipeline.launch.options import LOCAL_ARGS
    py = sys.executable
    if run.startswith("peer"):
        cmd = [py, "-m", "bench.peer", "--project", PROJECT, "--kind", KIND,
               "--namespaces", json.dumps(namespaces), *LOCAL_ARGS]
        return cmd + (["--text", str(out_dir)] if run == "peer-text" else [])
    job, writes = RUNS[run]
    params = f"kind={KIND}" + (",from=category,to=genre" if writes else "")
    cmd = [py, "-m", "pipeline", "--job", job, "--project", PROJECT, "--params", params,
           *LOCAL_ARGS, "--output", str(out_dir)]
    return cmd + ([f"--writes={writes}"] if writes else [])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", default="count_by_property", choices=sorted(RUNS))
    ap.add_argument("--entities", type=int, default=30000)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--top", type=int, default=20, help="heaviest functions listed")
    ap.add_argument("--raw", help="keep py-spy's collapsed stacks in this file")
    args = ap.parse_args(argv)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        print("bench.profile: py-spy is not installed (pip install py-spy)", file=sys.stderr)
        return 2
    from bench.bench import PROJECT, seed
    from devtools.emulator import DatastoreEmulator
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as kept:  # the run's output
        tmp = Path(kept)
        raw = Path(args.raw) if args.raw else tmp / "stacks.txt"
        code = _record(args, spy, raw, tmp, DatastoreEmulator(project=PROJECT), seed)
    return code


def _record(args, spy: str, raw: Path, tmp: Path, emu, seed) -> int:
    try:
        emu.start()
        os.environ.update(emu.env())
        expected, _ = seed(emu, args.entities)
        cmd = command(args.run, tmp / "out", sorted(expected))
        started = time.monotonic()
        done = subprocess.run([spy, "record", "--gil", "--rate", str(args.rate),
                               "--format", "raw", "--full-filenames", "--output", str(raw),
                               "--nonblocking", "--", *cmd],
                              env={**os.environ, "PYTHONUNBUFFERED": "1"},
                              capture_output=True, text=True)
        wall = time.monotonic() - started
        if done.returncode:
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
            return 1
    finally:
        emu.stop()
    owners, fns, total = tally(raw)
    print(f"{args.run} over {sum(expected.values())} entities: {wall:.1f} s, {total} samples "
          f"holding the GIL at {args.rate}/s = {total / args.rate:.1f} s of Python CPU")
    for owner, n in owners.most_common():
        print(f"  {n / total * 100:5.1f} %  {n / args.rate:6.2f} s  {owner}")
    print("heaviest functions (innermost owned frame):")
    for (owner, fn), n in fns.most_common(args.top):
        print(f"  {n / total * 100:5.1f} %  {fn}  [{owner}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
