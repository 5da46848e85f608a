"""What Dataflow runs: the Docker images' files, and the sdist the workers install."""
from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import apache_beam as beam
import pytest

from tests.support.offline_gcp import ROOT

# --- images -----------------------------------------------------------------------------------

def dockerfile(name):
    text = (ROOT / name).read_text(encoding="utf-8")
    return text, re.sub(r"\\\n", " ", text)


def test_dockerfiles_copy_what_exists_and_point_at_the_launcher():
    text, joined = dockerfile("Dockerfile")
    assert re.search(r"^FROM gcr\.io/dataflow-templates-base/python311-template-launcher-base\b",
                     text, re.M)
    py_file = re.search(r'FLEX_TEMPLATE_PYTHON_PY_FILE="/template/([^"]+)"', text).group(1)
    setup_file = re.search(r'FLEX_TEMPLATE_PYTHON_SETUP_FILE="/template/([^"]+)"', text).group(1)
    assert (py_file, setup_file) == ("flex_main.py", "setup.py")
    ignored = [line.strip().rstrip("/") for line in
               (ROOT / ".gcloudignore").read_text().splitlines() if line and not line.startswith("#")]
    for name in ("Dockerfile", "Dockerfile.worker"):
        _, joined = dockerfile(name)
        for m in re.finditer(r"^COPY (.+) \S+$", joined, re.M):
            for src in m.group(1).split():
                assert (ROOT / src).exists(), f"{name} copies missing {src}"
                assert src not in ignored, f"{name} copies {src}, which .gcloudignore leaves out"
    # The launcher and the workers run one Python and the Beam version requirements.txt pins
    # (Beam rejects a pipeline pickled by one Python on another).
    worker, _ = dockerfile("Dockerfile.worker")
    launcher_py = re.search(r"python(\d)(\d+)-template-launcher-base", text).groups()
    assert f"FROM apache/beam_python{'.'.join(launcher_py)}_sdk:{beam.__version__}" in worker
    assert f"apache-beam[gcp]=={beam.__version__}" in (ROOT / "requirements.txt").read_text()


# --- the sdist --------------------------------------------------------------------------------

@pytest.mark.timeout(180)
def test_sdist_contains_our_packages_and_installs_in_a_clean_venv(tmp_path):
    """Build the sdist from a copy of the sources (the work tree stays untouched), then install
    it with --no-deps into a new venv made --without-pip (fast) by this interpreter's pip
    (`pip --python`). Beam and the other dependencies come from this interpreter's
    site-packages through a .pth line, which sys.path puts after the new venv's own
    site-packages, so `import pipeline` must find the installed copy; the check runs in an
    empty directory with no PYTHONPATH. The build backend (setuptools with bdist_wheel) comes
    from this interpreter when it has one offline, else through pip's build isolation from
    the configured package index, as for .ci/run's own install."""
    src = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in ("pipeline", "jobs"):
        shutil.copytree(ROOT / d, src / d, ignore=ignore)
    for f in ("setup.py", "README.md"):
        shutil.copy(ROOT / f, src / f)
    subprocess.run([sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(tmp_path / "dist")],
                   cwd=src, check=True, capture_output=True, timeout=120)
    (sdist,) = (tmp_path / "dist").glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    expected = {str(p.relative_to(ROOT)) for d in ("pipeline", "jobs")
                for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts}
    assert expected <= members, f"missing from the sdist: {expected - members}"

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
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    empty = tmp_path / "empty"
    empty.mkdir()
    out = subprocess.run(
        [str(vpy), "-c", "import pipeline, jobs, pipeline.launch.template, pipeline.api.registry as r; "
         "print(pipeline.__file__); print(jobs.__file__); print(','.join(r.known_jobs()))"],
        cwd=empty, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    pipeline_file, jobs_file, registered = out.stdout.split()
    assert pipeline_file.startswith(purelib) and jobs_file.startswith(purelib)
    assert "count_keys" in registered.split(",")


def _setuptools_has_bdist_wheel() -> bool:
    try:
        import setuptools
    except ImportError:
        return False
    version = tuple(int(x) for x in re.findall(r"\d+", setuptools.__version__)[:2])
    return version >= (70, 1)
