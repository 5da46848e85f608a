"""Tests for devtools: the emulator wrapper and the deterministic seeding."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from google.cloud import datastore
from google.cloud.datastore.query import PropertyFilter

from devtools import emulator as emulator_mod
from devtools.emulator import DatastoreEmulator, EmulatorUnavailable
from devtools.seed import (
    CATEGORIES,
    CREATED_START,
    REFERENCE_TIME,
    NamespaceSpec,
    seed_dataset,
)
from tests.support import TEST_PROJECT

SPEC = [NamespaceSpec("", 120), NamespaceSpec("big", 700), NamespaceSpec("tiny", 3)]


def _keys(project: str, namespace: str, kind: str = "Item") -> set[tuple[Any, ...]]:
    query = datastore.Client(project=project, namespace=namespace or None).query(kind=kind)
    query.keys_only()
    return {entity.key.flat_path for entity in query.fetch()}


def test_emulator_answers_and_exports_env(emulator: DatastoreEmulator) -> None:
    with urllib.request.urlopen(f"http://{emulator.host}/", timeout=5) as resp:
        assert resp.read().strip() == b"Ok"
    assert emulator.host.startswith("127.0.0.1:")
    assert emulator.env() == {"DATASTORE_EMULATOR_HOST": emulator.host,
                              "DATASTORE_PROJECT_ID": TEST_PROJECT}
    assert os.environ["DATASTORE_EMULATOR_HOST"] == emulator.host


def test_reset_clears_data(emulator: DatastoreEmulator, datastore_client: datastore.Client) -> None:
    datastore_client.put(datastore.Entity(datastore_client.key("Thing", "x")))
    assert _keys(TEST_PROJECT, "", "Thing") == {("Thing", "x")}
    emulator.reset()
    assert _keys(TEST_PROJECT, "", "Thing") == set()


def test_seed_writes_exact_counts(emulator: DatastoreEmulator) -> None:
    written = seed_dataset(TEST_PROJECT, SPEC)
    for ns in SPEC:
        assert len(written[ns.name]) == ns.count
        assert _keys(TEST_PROJECT, ns.name) == set(written[ns.name])  # round-trips, incl. non-BMP
    assert len(_keys(TEST_PROJECT, "big", "Parent")) >= 2


def test_seed_key_variety(emulator: DatastoreEmulator) -> None:
    paths = seed_dataset(TEST_PROJECT, [NamespaceSpec("mix", 400)])["mix"]
    ids = [p[-1] for p in paths]
    ints = [i for i in ids if isinstance(i, int)]
    names = [i for i in ids if isinstance(i, str)]
    assert len(ints) == 200 and len(names) == 200
    assert all(1 <= i <= 2**62 for i in ints)
    assert any(any(ord(c) > 0xFFFF for c in n) for n in names), "no non-BMP name"
    assert any(any(0x80 <= ord(c) <= 0xFFFF for c in n) for n in names), "no accented/CJK name"
    children = [p for p in paths if len(p) == 4]
    assert len(children) == 40 and all(p[0] == "Parent" for p in children)


def test_seed_properties_and_determinism(emulator: DatastoreEmulator) -> None:
    first = seed_dataset(TEST_PROJECT, [NamespaceSpec("p", 200)], seed=7)
    client = datastore.Client(project=TEST_PROJECT, namespace="p")
    entities = list(client.query(kind="Item").fetch())
    assert sorted(e["n"] for e in entities) == list(range(200))
    for e in entities:
        assert e["category"] in CATEGORIES
        assert CREATED_START <= e["created"] < REFERENCE_TIME
        assert 1 <= len(e["tags"]) <= 3 and 100 <= len(e["payload"]) <= 300
    with_dates = [e for e in entities if "dates" in e]
    assert len(with_dates) == 10 and all(2 <= len(e["dates"]) <= 3 for e in with_dates)
    # payload is unindexed: an equality filter on it finds nothing.
    query = client.query(kind="Item", filters=[PropertyFilter("payload", "=", entities[0]["payload"])])
    assert list(query.fetch()) == []
    emulator.reset()
    assert seed_dataset(TEST_PROJECT, [NamespaceSpec("p", 200)], seed=7) == first
    emulator.reset()
    assert seed_dataset(TEST_PROJECT, [NamespaceSpec("p", 200)], seed=8) != first


def test_seed_refuses_without_emulator_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATASTORE_EMULATOR_HOST", raising=False)
    with pytest.raises(RuntimeError, match="DATASTORE_EMULATOR_HOST"):
        seed_dataset("real-project", [NamespaceSpec("", 1)])


def test_missing_sdk_gives_actionable_message(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no gcloud
    monkeypatch.setenv("CLOUDSDK_ROOT_DIR", str(tmp_path))
    monkeypatch.setattr(emulator_mod, "COMMON_SDK_ROOTS", ())
    with pytest.raises(EmulatorUnavailable, match="gcloud components install cloud-datastore-emulator"):
        emulator_mod.find_emulator_script()
    assert emulator_mod._main(["check"]) == 1
    assert "google-cloud-cli-datastore-emulator" in capsys.readouterr().err


def test_check_cli(tmp_path: Path) -> None:
    """``python -m devtools.emulator check`` in a real process, both ways: an SDK root whose
    emulator script is there, first without Java on PATH (exit 1, what to install), then with."""
    root = tmp_path / "sdk"
    script = root / emulator_mod.SCRIPT_RELPATH
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    bin_dir = tmp_path / "bin"  # PATH: no gcloud, and no java until it is put there
    bin_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "JAVA"}
    env.update(PATH=str(bin_dir), CLOUDSDK_ROOT_DIR=str(root))

    def check() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "devtools.emulator", "check"], env=env,
                              check=False, capture_output=True, text=True,
                              cwd=Path(__file__).parents[2], timeout=60)

    result = check()
    assert result.returncode == 1 and result.stdout == ""
    assert "Java not found" in result.stderr and str(script) in result.stderr
    java = bin_dir / "java"
    java.write_text("#!/bin/sh\n")
    java.chmod(0o755)
    result = check()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(script)


@pytest.mark.emulator
def test_stop_leaves_no_process() -> None:
    emu = DatastoreEmulator(project="stop-test")
    try:
        emu.start()
    except EmulatorUnavailable as exc:
        pytest.skip(f"Cloud Datastore emulator unavailable: {exc}")
    pgid, workdir, host = emu.pgid, emu.workdir, emu.host
    assert pgid is not None and workdir is not None and workdir.is_dir()
    assert len(emulator_mod._group_members(pgid)) >= 2  # wrapper script + java
    emu.stop()
    with pytest.raises(ProcessLookupError):  # not even a zombie is left in the group
        os.killpg(pgid, 0)
    assert not workdir.exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{host}/", timeout=2)
    emu.stop()  # idempotent


def test_demo_starts_a_bigquery_emulator_only_for_streaming_without_one() -> None:
    from devtools.demo import DEMO_TABLE, bigquery_args, wants_bigquery

    assert wants_bigquery(["--job", "stream_entities"])
    assert wants_bigquery(["--job=test_bq_rows", "--bigquery_table=ds.t"])
    assert not wants_bigquery(["--job", "count_keys"])
    assert not wants_bigquery(["--job", "stream_entities", "--bigquery_emulator_host", "h:1"])
    assert bigquery_args(["--job", "stream_entities"], "h:1") == [
        "--job", "stream_entities", "--bigquery_emulator_host", "h:1", "--bigquery_table", DEMO_TABLE]
    assert bigquery_args(["--bigquery_table=ds.t"], "h:1") == [
        "--bigquery_table=ds.t", "--bigquery_emulator_host", "h:1"]
