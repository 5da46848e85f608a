"""Running the mapper from tests: the real CLI path, records read back from files."""
from __future__ import annotations

import contextlib
import glob
import io
import json
import os
from typing import Optional, Sequence

from pipeline.launch.cli import main
from tests.support import TEST_PROJECT

#: One in-process worker (the CLI's default for local runs, ``options.LOCAL_ARGS``):
#: deterministic, and what the split-manager tests need.
IN_PROCESS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory", "--direct_num_workers=1"]


class RunResult:
    def __init__(self, code: int, stdout: str, stderr: str, output: Optional[str], job: str):
        self.code, self.stdout, self.stderr = code, stdout, stderr
        self.summary = None
        self.records: list = []
        if output:
            path = os.path.join(output, job, "summary.json")
            if os.path.exists(path):
                with open(path, encoding="utf-8") as f:
                    self.summary = json.load(f)
            #: unit part -> its records, from OUTPUT/JOB/namespaces/<label>.jsonl (one kind
            #: read) or OUTPUT/JOB/namespaces/<label>/<kind>.jsonl (several): "acme/Order"
            self.files: dict = {}
            base = os.path.join(output, job, "namespaces")
            for name in sorted(glob.glob(os.path.join(base, "**", "*.jsonl"), recursive=True)):
                with open(name, encoding="utf-8") as f:
                    rows = [json.loads(line) for line in f if line.strip()]
                self.files[os.path.relpath(name, base)[:-len(".jsonl")]] = rows
                self.records.extend(rows)


def run_mapper(job: str, args: Sequence[str] = (), *, output: Optional[str] = None,
               runner: Sequence[str] = IN_PROCESS, project: str = TEST_PROJECT) -> RunResult:
    """Run ``python -m pipeline`` in this process; capture its exit code and output."""
    argv = ["--job", job, "--project", project, *runner, *args]
    if output:
        argv += ["--output", output]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:  # argparse errors
            code = e.code if isinstance(e.code, int) else 1
    return RunResult(code, out.getvalue(), err.getvalue(), output, job)


def key_tuple(record: dict) -> tuple:
    return (record["namespace"], tuple(record["key"]))
