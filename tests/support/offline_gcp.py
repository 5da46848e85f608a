"""Offline stand-ins for Google Cloud: credentials that parse but reach nothing, no metadata
server to wait for, and the project's own files (the deployment tests read them)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

#: The project's root (setup.py, metadata.json, run_dataflow.sh, the Dockerfiles).
ROOT = Path(__file__).resolve().parents[2]
METADATA = json.loads((ROOT / "metadata.json").read_text(encoding="utf-8"))
#: metadata.json's parameters by name.
PARAMS = {p["name"]: p for p in METADATA["parameters"]}

#: DataflowRunner options that translate the job without submitting it.
DATAFLOW_ARGS = ["--runner=DataflowRunner", "--project=my-project", "--region=us-central1",
                 "--temp_location=gs://bucket-name/tmp", "--dry_run=True", "--launch_checks=false"]


def fake_gcp_env(tmp_path: Path) -> dict:
    """Credentials that parse but reach nothing, and no metadata server to wait for."""
    creds = tmp_path / "fake-credentials.json"
    creds.write_text(json.dumps({"type": "authorized_user", "client_id": "x.apps.googleusercontent.com",
                                 "client_secret": "x", "refresh_token": "x"}))
    return {"GOOGLE_APPLICATION_CREDENTIALS": str(creds), "NO_GCE_CHECK": "true",
            "GCE_METADATA_HOST": "127.0.0.1:1", "GCE_METADATA_IP": "127.0.0.1:1",
            "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}


@pytest.fixture
def offline_gcp(tmp_path, monkeypatch):
    for k, v in fake_gcp_env(tmp_path).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DATASTORE_EMULATOR_HOST", raising=False)
