"""The fault proxy between google-cloud-datastore (gRPC over HTTP/2) and the real emulator: the
client works through it unchanged, and a reset on the proxy reaches the client as a gRPC error."""
from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from google.api_core import exceptions as gexc
from google.api_core.retry import Retry
from google.cloud import datastore

from devtools.emulator import DatastoreEmulator
from tests.support.faultproxy import Fault, FaultProxy
from tests.support import TEST_PROJECT

pytestmark = pytest.mark.timeout(60)
TIMEOUT = 10.0  # seconds per call; no retry (NO_RETRY) so an error shows at once
NO_RETRY = Retry(predicate=lambda exc: False)


@pytest.fixture
def proxy(emulator: DatastoreEmulator) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", emulator.port, seed=1) as proxy:
        yield proxy
    assert proxy.stats.open == 0
    assert not [t.name for t in threading.enumerate() if t.name.startswith("faultproxy")]


@pytest.fixture
def client(proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch) -> Iterator[datastore.Client]:
    monkeypatch.setenv("DATASTORE_EMULATOR_HOST", proxy.host)
    client = datastore.Client(project=TEST_PROJECT)
    assert client._use_grpc  # HTTP/2 through the proxy, not the REST fallback
    yield client
    client._datastore_api.transport.close()  # the gRPC channel, before the proxy stops


def test_client_round_trips_through_the_proxy(proxy: FaultProxy, client: datastore.Client) -> None:
    entity = datastore.Entity(client.key("Item", "a"))
    entity["n"] = 1
    client.put(entity, retry=NO_RETRY, timeout=TIMEOUT)
    query = client.query(kind="Item")
    found = list(query.fetch(retry=NO_RETRY, timeout=TIMEOUT))
    assert [(e.key.name, e["n"]) for e in found] == [("a", 1)]
    stats = proxy.stats
    assert stats.accepted >= 1 and stats.bytes_up > 0 and stats.bytes_down > 0
    assert stats.total_faults == 0


def test_reset_reaches_the_client_as_unavailable(proxy: FaultProxy,
                                                 client: datastore.Client) -> None:
    key = client.key("Item", "a")
    assert client.get(key, retry=NO_RETRY, timeout=TIMEOUT) is None  # the channel is up
    # The next chunk each way resets its connection (a reconnect's too), for at most 5 s.
    proxy.set_fault(Fault("reset", limit=5, duration=5))
    with pytest.raises(gexc.ServiceUnavailable):
        client.get(key, retry=NO_RETRY, timeout=TIMEOUT)
    assert proxy.stats.faults["reset"] >= 1
    proxy.clear()
    # Transparent again: the client's default retry rides out the channel's reconnect backoff.
    assert client.get(key, retry=Retry(timeout=TIMEOUT), timeout=TIMEOUT) is None
