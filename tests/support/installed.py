"""The project as a user installs it: an sdist built from a copy of the sources (the work tree
stays untouched), installed with --no-deps into a new venv made --without-pip (fast) by this
interpreter's pip (``pip --python``). Beam and the other dependencies come from this
interpreter's site-packages through a .pth line, which sys.path puts after the new venv's own
site-packages, so ``import pipeline`` finds the installed copy. The build backend
(setuptools with bdist_wheel) comes from this interpreter when it has one offline, else through
pip's build isolation from the configured package index, as for .ci/run's own install.

``installed_venv`` (session fixture): one such venv, with its ``bin/datastore-mapper``."""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What the sdist packages (setup.py's find_packages).
PACKAGES = ("pipeline", "jobs", "devtools")


@dataclasses.dataclass(frozen=True)
class Installed:
    venv: Path
    purelib: str
    members: frozenset  # the sdist's files, relative to its top directory

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def command(self) -> Path:
        """The console script, as pip made it."""
        return self.venv / "bin" / "datastore-mapper"

    def env(self, **extra: str) -> dict:
        """A user's environment: no PYTHONPATH, the venv's bin first on PATH."""
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return {**env, **extra}


def install_from_sdist(tmp_path: Path) -> Installed:
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in PACKAGES:
        shutil.copytree(ROOT / d, src / d, ignore=ignore)
    for f in ("setup.py", "README.md"):
        shutil.copy(ROOT / f, src / f)
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path / "dist")],
                   cwd=src, check=True, capture_output=True, timeout=120)
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = frozenset(m.split("/", 1)[1] for m in tar.getnames() if "/" in m)
    venv_dir = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv_dir)], check=True,
                   timeout=60)
    vpy = venv_dir / "bin" / "python"
    purelib = subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    Path(purelib, "zz_beam_from_test_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    offline_backend = importlib.util.find_spec("wheel") is not None or _setuptools_has_bdist_wheel()
    cmd = [sys.executable, "-m", "pip", "--python", str(vpy), "install", "--quiet", "--no-deps",
           "--disable-pip-version-check", str(sdist)]
    if offline_backend:
        cmd[-1:-1] = ["--no-build-isolation", "--no-index"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return Installed(venv_dir, purelib, members)


def _setuptools_has_bdist_wheel() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    version = tuple(int(x) for x in re.findall(r"\d+", setuptools.__version__)[:2])
    return version >= (70, 1)


@pytest.fixture(scope="session")
def installed_venv(tmp_path_factory) -> Installed:
    return install_from_sdist(tmp_path_factory.mktemp("installed"))
