"""What Dataflow runs: the Docker images' files, and the sdist the workers install."""
from __future__ import annotations

import re
import shutil
import subprocess

import apache_beam as beam
import pytest

from tests.support.installed import PACKAGES, install_from_sdist
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
    """The sdist (``tests.support.installed``) holds every module of our packages and, installed
    into a clean venv, imports from there (run in an empty directory with no PYTHONPATH); its
    console script ``datastore-mapper`` is on the venv's PATH and runs the CLI and the tools."""
    inst = install_from_sdist(tmp_path)
    expected = {str(p.relative_to(ROOT)) for d in PACKAGES
                for p in (ROOT / d).rglob("*.py") if "__pycache__" not in p.parts}
    assert expected <= inst.members, f"missing from the sdist: {expected - inst.members}"
    env = inst.env()
    empty = tmp_path / "empty"
    empty.mkdir()
    out = subprocess.run(
        [str(inst.python), "-c", "import pipeline, jobs, devtools.emulator, "
         "pipeline.launch.template, pipeline.api.registry as r; "
         "print(pipeline.__file__); print(jobs.__file__); print(','.join(r.known_jobs()))"],
        cwd=empty, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    pipeline_file, jobs_file, registered = out.stdout.split()
    assert pipeline_file.startswith(inst.purelib) and jobs_file.startswith(inst.purelib)
    assert "count_keys" in registered.split(",")
    # The console script, found on PATH as a user's shell would.
    assert shutil.which("datastore-mapper", path=env["PATH"]) == str(inst.command)
    jobs_list = subprocess.run(["datastore-mapper", "--list_jobs"], cwd=empty, env=env,
                               capture_output=True, text=True, timeout=60)
    assert jobs_list.returncode == 0, jobs_list.stderr[-3000:]
    assert "count_keys" in jobs_list.stdout and "rename_property" in jobs_list.stdout
    helped = subprocess.run(["datastore-mapper", "--help"], cwd=empty, env=env,
                            capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: datastore-mapper ")
    assert "datastore-mapper emulator" in helped.stdout
    bad = subprocess.run(["datastore-mapper", "--job", "count_keys", "--project", "p",
                          "--shard", "4"], cwd=empty, env=env, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and "did you mean --shards?" in bad.stderr, bad.stderr[-2000:]
    tool = subprocess.run(["datastore-mapper", "emulator", "start", "--help"], cwd=empty,
                          env=env, capture_output=True, text=True, timeout=60)
    assert tool.returncode == 0 and "--data_dir" in tool.stdout and "--in_memory" in tool.stdout
