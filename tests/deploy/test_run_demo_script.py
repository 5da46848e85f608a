"""run_demo.sh installs the project into .venv only when something changed: run in a copy of
the checkout whose .venv/bin/python is a recorder (what it was asked to do), so no real install
happens."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/../calls.log"
if [[ "$1 $2 $3" == "-m pip install" ]]; then
  printf '#!/bin/sh\\n' > "$(dirname "$0")/datastore-mapper"; chmod +x "$(dirname "$0")/datastore-mapper"
fi
exit 0
"""


def _checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    root.mkdir()
    for name in ("run_demo.sh", "setup.py", "requirements.txt"):
        shutil.copy(ROOT / name, root / name)
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "python").chmod(0o755)
    return root


def _run(root: Path) -> list:
    log = root / ".venv" / "calls.log"
    log.unlink(missing_ok=True)
    proc = subprocess.run(["bash", str(root / "run_demo.sh"), "--job", "count_keys"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PATH": os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr
    return log.read_text().splitlines()


def test_run_demo_installs_only_when_setup_or_requirements_changed(tmp_path):
    root = _checkout(tmp_path)
    install = "-m pip install --quiet -e .[test]"
    first = _run(root)
    assert first == [install, "-m devtools.emulator check", "-m devtools.demo --job count_keys"]
    assert _run(root) == first[1:]  # nothing changed: no install
    with open(root / "setup.py", "a") as f:
        f.write("# a change\n")
    assert _run(root)[0] == install
    assert _run(root)[0] != install
    with open(root / "requirements.txt", "a") as f:
        f.write("# a change\n")
    assert _run(root)[0] == install
    (root / ".venv" / "bin" / "datastore-mapper").unlink()  # a venv without the command
    assert _run(root)[0] == install
