"""The launch checks under network faults (issue 22, point 9): a misconfiguration fails at
once, a fault of a service that has answered gets the run's own deadline.

- A refused connection or an unknown host, before Datastore has answered once in this launch,
  is a misconfiguration: one ``error:`` line, exit 2, no retry at all.
- Once Datastore has answered (the namespaces are listed), a reset or a time-out is a transient
  fault of a service that works: the launch checks retry it for ``--datastore_deadline``, like
  the run, not for the launch's short cap. The cap (20 s) is lowered here to 3 s
  (``LAUNCH_RETRY``, what ``for_launch`` reads) so that an outage of a few seconds outlasts it
  and the test stays short; with the cap the launch would give up ("unreachable").

The faults come from our proxy (``tests/support/faultproxy.py``) in front of the real emulator; the
outage starts the moment the first launch call (listing namespaces) has its answer.
"""
from __future__ import annotations

import collections
import dataclasses
import socket

import pytest

import pipeline.core.retry as core_retry
import pipeline.launch.preflight as preflight
from tests.support.faultproxy import Fault, FaultProxy
from devtools.seed import NamespaceSpec, seed_dataset
from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS, key_tuple, run_mapper

DATASET = [NamespaceSpec("", 120), NamespaceSpec("acme", 80)]
SMALL = ["--shards", "2", "--slice_entities", "60"]
#: The launch's cap, lowered for these tests (20 s in the product).
SHORT_CAP = 3.0
#: How long every connection is reset once Datastore has answered: well past SHORT_CAP.
OUTAGE = 8.0


@pytest.fixture(scope="module")
def seeded(datastore_emulator):
    datastore_emulator.reset()
    written = seed_dataset(TEST_PROJECT, DATASET)
    yield {(ns, tuple(p)) for ns, paths in written.items() for p in paths}
    datastore_emulator.reset()


@pytest.fixture
def proxy(datastore_emulator, monkeypatch):
    host, port = datastore_emulator.host.rsplit(":", 1)
    with FaultProxy(host, int(port), seed=22) as p:
        monkeypatch.setenv("DATASTORE_EMULATOR_HOST", p.host)
        yield p


@pytest.fixture
def short_launch_cap(monkeypatch):
    monkeypatch.setattr(core_retry, "LAUNCH_RETRY",
                        dataclasses.replace(core_retry.LAUNCH_RETRY, deadline=SHORT_CAP))


def fault_once_answered(monkeypatch, proxy: FaultProxy, fault: Fault) -> list:
    """Set ``fault`` on the proxy as soon as the launch's first call (listing the namespaces)
    has Datastore's answer; returns the namespaces it got (one list per launch)."""
    listed: list = []
    real = preflight.list_namespaces

    def answered_then_fault(*args, **kwargs):
        names = real(*args, **kwargs)
        listed.append(names)
        if len(listed) == 1:
            proxy.set_fault(fault)
        return names

    monkeypatch.setattr(preflight, "list_namespaces", answered_then_fault)
    return listed


def errors_of(stderr: str) -> list:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def retry_lines(caplog) -> list:
    """The retries logged (in-process, the log records reach caplog, not stderr)."""
    return [r.getMessage() for r in caplog.records if "transient error" in r.getMessage()]


def test_resets_after_datastore_answered_get_the_run_s_deadline(
        seeded, proxy, short_launch_cap, monkeypatch, tmp_path, caplog):
    """Every connection reset for OUTAGE s, starting right after the namespaces are listed:
    the launch checks ride it out (the run's --datastore_deadline, 60 s), and the run completes
    with every key once. With the launch's cap (3 s here, 20 s in the product) the launch gave
    up: "unreachable"."""
    listed = fault_once_answered(monkeypatch, proxy, Fault("reset", rate=1.0, limit=100_000,
                                                           duration=OUTAGE))
    result = run_mapper("export_keys", [*SMALL, "--emulator_host", proxy.host,
                                        "--datastore_deadline", "60"],
                        output=str(tmp_path / "out"), runner=IN_PROCESS)
    assert listed and listed[0] == ["", "acme"]
    assert result.code == 0, result.stderr[-3000:]
    assert not errors_of(result.stderr), result.stderr[-3000:]
    assert proxy.stats.faults["reset"] >= 1, proxy.stats
    # The launch checks retried, and said so (the run's own retries are counted in the summary).
    retried = retry_lines(caplog)
    assert retried, result.stderr[-3000:]
    assert "giving up 60 s after the first error" in retried[0], retried[0]
    seen = collections.Counter(key_tuple(r) for r in result.records)
    assert set(seen) == seeded and all(n == 1 for n in seen.values())


def test_a_stall_after_datastore_answered_gets_the_run_s_deadline(
        seeded, proxy, short_launch_cap, monkeypatch, tmp_path, caplog):
    """Nothing forwarded for OUTAGE s once the namespaces are listed (calls time out after
    --datastore_call_timeout 2 s): retried for the run's deadline, and the run completes."""
    fault_once_answered(monkeypatch, proxy, Fault("stall", rate=1.0, limit=100_000,
                                                  duration=OUTAGE))
    result = run_mapper("export_keys", [*SMALL, "--emulator_host", proxy.host,
                                        "--datastore_deadline", "60",
                                        "--datastore_call_timeout", "2"],
                        output=str(tmp_path / "out"), runner=IN_PROCESS)
    assert result.code == 0, result.stderr[-3000:]
    assert proxy.stats.faults["stall"] >= 1, proxy.stats
    assert any("DeadlineExceeded" in line for line in retry_lines(caplog)), \
        result.stderr[-3000:]
    assert {key_tuple(r) for r in result.records} == seeded


def test_an_outage_past_the_run_s_deadline_still_ends_the_launch_with_one_line(
        seeded, proxy, short_launch_cap, monkeypatch, tmp_path):
    """Datastore answered, then every connection is reset for longer than --datastore_deadline
    (4 s): the launch gives up after that deadline, with one line, exit 2, no traceback."""
    fault_once_answered(monkeypatch, proxy, Fault("reset", rate=1.0, limit=100_000,
                                                  duration=60))
    result = run_mapper("export_keys", [*SMALL, "--emulator_host", proxy.host,
                                        "--datastore_deadline", "4"],
                        output=str(tmp_path / "out"), runner=IN_PROCESS)
    assert result.code == 2, result.stderr[-3000:]
    errors = errors_of(result.stderr)
    assert len(errors) == 1, result.stderr[-3000:]
    assert f"the Datastore emulator at {proxy.host} is unreachable (checked for 4 s" in errors[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()  # a refused launch writes nothing


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("host, why", [
    (None, "connection refused"),  # a closed port on 127.0.0.1
    ("no-such-host.invalid:8081", "unknown host"),
])
def test_a_refused_connection_or_an_unknown_host_fails_at_once(seeded, tmp_path, caplog,
                                                               monkeypatch, host, why):
    """A misconfiguration: one line, exit 2, not one retry (the run's deadline, 300 s by
    default, and the launch's 20 s cap do not apply)."""
    host = host or f"127.0.0.1:{_closed_port()}"
    # --emulator_host is exported to the process (workers inherit it): restored after the test.
    monkeypatch.setenv("DATASTORE_EMULATOR_HOST", host)
    result = run_mapper("export_keys", [*SMALL, "--emulator_host", host],
                        output=str(tmp_path / "out"), runner=IN_PROCESS)
    assert result.code == 2, result.stderr[-3000:]
    errors = errors_of(result.stderr)
    assert len(errors) == 1, result.stderr[-3000:]
    assert f"the Datastore emulator at {host} is unreachable (not retried" in errors[0], errors[0]
    assert why in errors[0] and "--emulator_host / DATASTORE_EMULATOR_HOST" in errors[0]
    assert not retry_lines(caplog), retry_lines(caplog)
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def _grpc_error(host: str, monkeypatch, then=None):
    """The error of a query to ``host`` (no retry); ``then()`` runs after a first query that
    was answered."""
    from google.api_core import exceptions as gexc
    from google.api_core.retry import Retry
    from google.cloud import datastore

    no_retry = Retry(predicate=lambda e: False)
    with monkeypatch.context() as m:
        m.setenv("DATASTORE_EMULATOR_HOST", host)
        c = datastore.Client(project=TEST_PROJECT)
        q = c.query(kind="__namespace__")
        try:
            if then is not None:
                list(q.fetch(retry=no_retry, timeout=5))
                then()
            with pytest.raises(gexc.GoogleAPICallError) as e:
                list(q.fetch(retry=no_retry, timeout=5))
        finally:
            c._datastore_api.transport.close()
    return e.value


def test_what_a_misconfiguration_looks_like_in_real_errors(datastore_emulator, monkeypatch):
    """``misconfigured`` on the errors the clients really raise: gRPC's UNAVAILABLE for a
    refused connection and an unknown host, and requests' (BigQuery's client) for a refused
    connection, are misconfigurations; a reset or a closed socket is not."""
    import requests
    from google.api_core import exceptions as gexc

    refused = _grpc_error(f"127.0.0.1:{_closed_port()}", monkeypatch)
    assert isinstance(refused, gexc.ServiceUnavailable)
    assert core_retry.misconfigured(refused) == "connection refused"
    unknown = _grpc_error("no-such-host.invalid:8081", monkeypatch)
    assert isinstance(unknown, gexc.ServiceUnavailable)
    assert core_retry.misconfigured(unknown) == "unknown host"
    with pytest.raises(requests.exceptions.ConnectionError) as e:
        requests.get(f"http://127.0.0.1:{_closed_port()}/", timeout=5)
    assert core_retry.misconfigured(e.value) == "connection refused"
    host, port = datastore_emulator.host.rsplit(":", 1)
    for fault in (Fault("reset", rate=1.0, limit=100, duration=10),
                  Fault("cut", rate=1.0, limit=100, duration=10)):
        with FaultProxy(host, int(port), seed=1) as proxy:
            err = _grpc_error(proxy.host, monkeypatch, lambda: proxy.set_fault(fault))
            proxy.clear()
        assert isinstance(err, gexc.ServiceUnavailable), err
        assert core_retry.misconfigured(err) is None, err


def test_bigquery_resets_after_it_answered_get_the_bigquery_deadline(
        seeded, bigquery_emulator, short_launch_cap, monkeypatch, tmp_path):
    """BigQuery's launch checks the same way: once BigQuery answered (the table looked up: not
    found), every connection to it is reset for OUTAGE s while the dataset and table are
    created; they are retried for --bigquery_deadline (60 s), not the launch's cap (3 s here,
    20 s in the product), and the run streams every entity."""
    from google.cloud import bigquery

    import pipeline.sinks.bigquery.prepare as bq_prepare
    monkeypatch.setattr(bq_prepare, "LAUNCH_DEADLINE", SHORT_CAP, raising=False)  # main's cap
    bq = bigquery_emulator
    host, port = bq.host.rsplit(":", 1)
    table = f"{bq.new_dataset()}.items"
    real = bigquery.Client.get_table
    looked_up: list = []

    with FaultProxy(host, int(port), seed=22) as proxy:
        def answered_then_fault(self, *args, **kwargs):
            try:
                return real(self, *args, **kwargs)
            finally:
                looked_up.append(1)
                if len(looked_up) == 1:
                    proxy.set_fault(Fault("reset", rate=1.0, limit=100_000, duration=OUTAGE))

        monkeypatch.setattr(bigquery.Client, "get_table", answered_then_fault)
        result = run_mapper("stream_entities", [
            *SMALL, "--bigquery_table", table, "--bigquery_emulator_host", proxy.host,
            "--bigquery_deadline", "60"], output=str(tmp_path / "out"), runner=IN_PROCESS)
        faults = proxy.stats.faults["reset"]
    assert result.code == 0, result.stderr[-3000:]
    assert faults >= 1
    rows = bq.rows(table)
    assert len(rows) == len(seeded)
