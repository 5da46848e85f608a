"""Secrets in a credentials file never reach the output of a run, even at DEBUG.

The CLI runs without an emulator host, so the Datastore client must use the credentials of
``GOOGLE_APPLICATION_CREDENTIALS``: fake service-account files (one whose key cannot be loaded,
one with a real RSA key whose token endpoint is a closed local port) and malformed files whose
content holds the secret where google-auth's parser error quotes it. No network is used
(``NO_GCE_CHECK``, a closed metadata host, a closed token endpoint). Whatever the run prints or
leaves in its ``TMPDIR`` must not contain the secrets.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import TEST_PROJECT

ROOT = Path(__file__).resolve().parents[2]
MARK = "SECRETpzq7"  # in every secret below: recognisable, and in nothing else
PEM_BODY = (f"MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC{MARK}xA1\n"
            f"MzEfYyjiWA4R4{MARK}M2bS1GB4t7NXp98C3SC6dVMvDuictGeurT8jNbvJZ\n")
BOGUS_PEM = f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}-----END PRIVATE KEY-----\n"
TOKEN = f"ya29.a0AfB_{MARK}-tokenVALUE_0123456789"


def _real_key() -> tuple[str, list[str]]:
    """A real (throw-away) RSA key in PEM, and the lines of its body (each a secret)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode("ascii")
    return pem, [ln for ln in pem.splitlines() if ln and not ln.startswith("-----")]


def _service_account(private_key: str) -> dict:
    return {"type": "service_account", "project_id": TEST_PROJECT,
            "private_key_id": f"0123abcd{MARK}89ef0123abcd{MARK}",
            "private_key": private_key,
            "client_email": "mapper@test-project.iam.gserviceaccount.com",
            "client_secret": f"GOCSPX-{MARK}-client",
            "refresh_token": f"1//0g{MARK}-refresh",
            "client_id": "104937452019384756",
            "token_uri": "http://127.0.0.1:1/token",  # closed: no network, the refresh fails
            "auth_uri": "https://accounts.google.com/o/oauth2/auth"}


def _files(tmp: Path) -> dict:
    """name -> (the file's text, the secrets in it that must not appear)."""
    real_pem, real_lines = _real_key()
    secrets = [MARK]
    return {
        # google-auth cannot load this key ("Unable to load PEM file").
        "service-account-bogus-key": (json.dumps(_service_account(BOGUS_PEM), indent=2),
                                      secrets),
        # A key that loads: the client is made, its token request fails (closed port).
        "service-account-real-key": (json.dumps(_service_account(real_pem), indent=2),
                                     secrets + real_lines),
        # Not JSON: the parser's error names a position; the text holds the secrets.
        "malformed-json": ('{"type": "service_account", "private_key": "' +
                           BOGUS_PEM.replace("\n", "\\n") + f'", "private_key_id": "{MARK}", '
                           '"client_email": oops}', secrets),
        # Valid JSON, but its type holds a token: google-auth's error quotes the type.
        "type-holds-a-token": (json.dumps({"type": TOKEN, "private_key": BOGUS_PEM,
                                           "client_secret": f"x{MARK}"}), secrets),
        # ... or a whole private key.
        "type-holds-a-key": (json.dumps({"type": BOGUS_PEM, "private_key_id": MARK}), secrets),
        # An authorized-user file missing a field: the error names the fields.
        "authorized-user-incomplete": (json.dumps({"type": "authorized_user",
                                                   "refresh_token": f"1//{MARK}",
                                                   "client_secret": f"GOCSPX-{MARK}"}),
                                       secrets),
    }


def _all_text_under(top: Path) -> str:
    chunks = []
    for dirpath, _, filenames in os.walk(top):
        for f in filenames:
            with open(os.path.join(dirpath, f), "rb") as fh:
                chunks.append(fh.read().decode("utf-8", "replace"))
    return "\n".join(chunks)


@pytest.mark.parametrize("level", ["DEBUG", "DEBUG-ALL"])
@pytest.mark.parametrize("name", ["service-account-bogus-key", "service-account-real-key",
                                  "malformed-json", "type-holds-a-token", "type-holds-a-key",
                                  "authorized-user-incomplete"])
def test_credentials_secrets_never_reach_the_output(tmp_path, name, level):
    text, secrets = _files(tmp_path)[name]
    creds = tmp_path / "credentials.json"
    creds.write_text(text, encoding="utf-8")
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATASTORE_EMULATOR_HOST", "DATASTORE_PROJECT_ID")}
    env.update({"GOOGLE_APPLICATION_CREDENTIALS": str(creds), "NO_GCE_CHECK": "true",
                "GCE_METADATA_HOST": "127.0.0.1:1", "GCE_METADATA_IP": "127.0.0.1:1",
                "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "TMPDIR": str(tmpdir),
                "DATASTORE_MAPPER_LOG_LEVEL": level, "PYTHONIOENCODING": "utf-8",
                "PYTHONDONTWRITEBYTECODE": "1"})
    # A short deadline: a real key's token is refused (offline) in 3 s of retries, not 20.
    r = subprocess.run([sys.executable, "-m", "pipeline", "--job", "count_keys", "--project",
                        TEST_PROJECT, "--output", str(out), "--datastore_deadline", "3"],
                       cwd=ROOT, env=env,
                       capture_output=True, text=True, encoding="utf-8", timeout=90)
    detail = f"exit {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
    assert r.returncode == 2, detail
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, detail
    assert "credentials" in errors[0] or "unreachable" in errors[0], detail
    left = _all_text_under(tmp_path / "tmpdir") + (_all_text_under(out) if out.exists() else "")
    for secret in secrets:
        assert secret not in r.stdout, f"{secret!r} in stdout\n{detail}"
        assert secret not in r.stderr, f"{secret!r} in stderr\n{detail}"
        assert secret not in left, f"{secret!r} in a file the run left"


def test_secrets_on_the_command_line_are_redacted_in_the_summary_and_the_report(emulator,
                                                                                tmp_path):
    """The report shows the command line as run (summary.json's ``command_line``): a secret
    given on it (here in Beam's ``--labels``, which a local run ignores) is redacted there as
    the logs redact it, and is nowhere in the run's files or output."""
    from devtools.seed import NamespaceSpec, seed_dataset
    from tests.support.runs import run_mapper

    seed_dataset(TEST_PROJECT, [NamespaceSpec("", 5)])
    out = tmp_path / "out"
    r = run_mapper("count_keys", ["--labels", f"client_secret=GOCSPX-{MARK}",
                                  "--labels", f"access={TOKEN}"], output=str(out))
    assert r.code == 0, r.stderr
    line = r.summary["command_line"]
    assert line.startswith("python -m pipeline --job count_keys ") and MARK not in line
    assert "client_secret=[REDACTED]" in line and "access=[REDACTED]" in line
    report = (out / "count_keys" / "report.html").read_text(encoding="utf-8")
    assert "client_secret=[REDACTED]" in report
    left = _all_text_under(out)
    assert MARK not in left and MARK not in r.stdout and MARK not in r.stderr
