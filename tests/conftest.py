"""The test suite's hooks: emulator-backed tests are marked ``emulator`` (by the fixtures they
use) and counted, so the run ends with ``emulator-backed tests: N passed``.

Layout: ``unit/`` (no emulator, no network), ``emulator/`` (the real Cloud Datastore, Cloud
Storage and BigQuery emulators), ``deploy/`` (Dataflow translation, the template launcher,
packaging, run_dataflow.sh; offline), ``support/`` (fixtures, helpers and test-only jobs).
"""

from __future__ import annotations

import os

import pytest

# Datastore (datastore_emulator, emulator, datastore_client), Cloud Storage (fake_gcs,
# gcs_emulator, fake credentials), BigQuery (bigquery_emulator_server, bigquery_emulator) and an
# offline Google Cloud for the deployment tests (offline_gcp).
pytest_plugins = ["tests.support.datastore_emulator", "tests.support.storage_emulators",
                  "tests.support.bigquery_emulator", "tests.support.offline_gcp",
                  "tests.support.browser", "tests.support.installed"]

EMULATOR_FIXTURES = frozenset({"datastore_emulator", "emulator", "datastore_client",
                               "fake_gcs", "gcs_emulator", "gcs_emulator_env",
                               "bigquery_emulator_server", "bigquery_emulator"})


@pytest.fixture(autouse=True, scope="session")
def cache_home_in_tmp(tmp_path_factory):
    """Runs without --output keep their summary and report under the user's cache directory:
    the tests' go to a directory of the session's own (subprocesses inherit it)."""
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield os.environ["XDG_CACHE_HOME"]
    if saved is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = saved


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "emulator: needs the Cloud Datastore emulator, a Cloud Storage emulator or the "
        "BigQuery emulator (skipped when it is not installed)")


#: The node ids of the emulator-backed tests (a keyword would also match the folder's name).
_emulator_tests: set[str] = set()
_emulator_outcomes: dict[str, int] = {}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if EMULATOR_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.emulator)
        if item.get_closest_marker("emulator") is not None:
            _emulator_tests.add(item.nodeid)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Count what happened to emulator-backed tests (a skip happens in setup)."""
    if report.nodeid not in _emulator_tests:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        outcome = "failed" if report.outcome == "failed" else report.outcome
        _emulator_outcomes[outcome] = _emulator_outcomes.get(outcome, 0) + 1


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    counts = ", ".join(f"{n} {what}" for what, n in sorted(_emulator_outcomes.items()))
    terminalreporter.write_line(f"emulator-backed tests: {counts or 'none ran'}")
