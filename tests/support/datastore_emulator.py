"""The Cloud Datastore emulator: one real emulator per test session, reset before each test.

Without the SDK the fixtures skip with a reason containing "emulator", which `.ci/run` counts
and reports loudly.
"""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from google.cloud import datastore

from devtools.emulator import DatastoreEmulator, EmulatorUnavailable
from tests.support import TEST_PROJECT


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
