"""Shared fixtures: one real Cloud Datastore emulator per session, reset before each test.

Tests that need it are marked `emulator` automatically; without the SDK they are skipped with a
reason containing "emulator", which `.ci/run` counts and reports loudly.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from google.cloud import datastore

from devtools.emulator import DatastoreEmulator, EmulatorUnavailable

# Cloud Storage emulators (fake_gcs, gcs_emulator) and fake credentials: tests/storage_emulators.py.
# BigQuery emulator (bigquery_emulator_server, bigquery_emulator): tests/bigquery_emulator.py.
pytest_plugins = ["storage_emulators", "bigquery_emulator"]

TEST_PROJECT = "test-project"
EMULATOR_FIXTURES = frozenset({"datastore_emulator", "emulator", "datastore_client",
                               "fake_gcs", "gcs_emulator", "gcs_emulator_env",
                               "bigquery_emulator_server", "bigquery_emulator"})


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "emulator: needs the Cloud Datastore emulator, a Cloud Storage emulator or the "
        "BigQuery emulator (skipped when it is not installed)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if EMULATOR_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.emulator)


@pytest.fixture(scope="session")
def datastore_emulator() -> Iterator[DatastoreEmulator]:
    """Start once per session (about 2 s); exports DATASTORE_EMULATOR_HOST/PROJECT_ID meanwhile."""
    emu = DatastoreEmulator(project=TEST_PROJECT)
    try:
        emu.start()
    except EmulatorUnavailable as exc:
        pytest.skip(f"Cloud Datastore emulator unavailable: {exc}")
    saved = {name: os.environ.get(name) for name in emu.env()}
    os.environ.update(emu.env())
    try:
        yield emu
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        emu.stop()


@pytest.fixture
def emulator(datastore_emulator: DatastoreEmulator) -> Iterator[DatastoreEmulator]:
    """The session emulator, emptied before the test so tests never see each other's data."""
    datastore_emulator.reset()
    yield datastore_emulator


@pytest.fixture
def datastore_client(emulator: DatastoreEmulator) -> datastore.Client:
    """A client for the default namespace of the (freshly reset) emulator."""
    return datastore.Client(project=TEST_PROJECT)


_emulator_outcomes: dict[str, int] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count what happened to emulator-backed tests (a skip happens in setup)."""
    if "emulator" not in report.keywords:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = "failed" if report.outcome == "failed" else report.outcome
        _emulator_outcomes[outcome] = _emulator_outcomes.get(outcome, 0) + 1


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    counts = ", ".join(f"{n} {what}" for what, n in sorted(_emulator_outcomes.items()))
    terminalreporter.write_line(f"emulator-backed tests: {counts or 'none ran'}")
