"""Every query of a run is decoded from the raw response (pipeline.datastore.decode): through the
real emulator, page after page, the entities are the client's own, in the same order; the next
page is asked for while this one is read, and nothing more."""
from __future__ import annotations

import datetime
import threading

import pytest
from google.api_core import exceptions as gexc

from devtools.seed import NamespaceSpec, seed_dataset
from pipeline.core.retry import RetryPolicy
from pipeline.datastore.client import fetch
from pipeline.datastore.decode import RawIterator
from tests.support.datastore_emulator import TEST_PROJECT
from tests.unit.test_decode import _every_value, _same


def test_a_query_read_the_raw_way_returns_the_clients_entities_page_by_page(datastore_client):
    seed_dataset(TEST_PROJECT, [NamespaceSpec("", 40), NamespaceSpec("acme", 25)])
    odd = _every_value()
    odd.key = datastore_client.key("Odd", 1, namespace="acme")
    datastore_client.put(odd)
    for namespace, kind in [(None, "Item"), ("acme", "Item"), ("acme", "Odd")]:
        q = datastore_client.query(kind=kind, namespace=namespace)
        theirs = list(q.fetch())
        it = fetch(datastore_client.query(kind=kind, namespace=namespace), RetryPolicy(),
                   limit=1000)
        assert type(it) is RawIterator
        pages = [list(page) for page in it.pages]
        ours = [e for page in pages for e in page]
        assert len(ours) == len(theirs) > 0
        for a, b in zip(ours, theirs):
            _same(a, b)
    # Paged by a small limit, resumed from cursors: the same entities, none twice.
    q = datastore_client.query(kind="Item")
    seen, cursor = [], None
    while True:
        it = fetch(q, RetryPolicy(), limit=7, start_cursor=cursor)
        page = list(it)
        seen.extend(e.key.id_or_name for e in page)
        if len(page) < 7:
            break
        cursor = it.next_page_token
    assert sorted(seen, key=str) == sorted((e.key.id_or_name for e in q.fetch()), key=str)
    assert len(seen) == len(set(seen)) == 40
    assert isinstance(odd["when"], datetime.datetime)


def _watch_calls(monkeypatch, c, fail_at=None):
    """Every RunQuery call of ``c``: (the thread it ran on, the results it returned); the
    ``fail_at``-th call (1-based) raises ServiceUnavailable instead."""
    api = c._datastore_api
    real = api.run_query
    calls: list = []
    started = threading.Event()

    def run_query(*a, **kw):
        calls.append([threading.current_thread().name, None])
        if threading.current_thread() is not threading.main_thread():
            started.set()
        if len(calls) == fail_at:
            raise gexc.ServiceUnavailable("injected")
        response = real(*a, **kw)
        calls[-1][1] = len(response._pb.batch.entity_results)
        return response

    monkeypatch.setattr(api, "run_query", run_query)
    return calls, started


def test_the_next_page_is_asked_for_while_this_one_is_read_and_nothing_more(
        datastore_client, monkeypatch):
    seed_dataset(TEST_PROJECT, [NamespaceSpec("", 1200)])
    q = datastore_client.query(kind="Item")
    expected = [e.key.flat_path for e in q.fetch()]
    calls, started = _watch_calls(monkeypatch, datastore_client)
    it = fetch(q, RetryPolicy(), limit=1100)
    pages = it.pages
    first = [e.key.flat_path for e in next(pages)]
    # The second page's call was sent from the pool while the first page is still in hand.
    assert started.wait(60), "no call ahead"
    assert calls[1][0].startswith("read-ahead")
    got = first + [e.key.flat_path for page in pages for e in page]
    assert got == expected[:1100]
    assert len(calls) > 2, "the emulator answered in fewer than 3 pages: the test proves little"
    # Nothing was asked for that was not read: every call's results were handed over.
    assert sum(n for _, n in calls) == 1100
    # Without reading ahead: the same pages, made on this thread.
    calls.clear()
    plain = fetch(q, RetryPolicy(), limit=1100)
    plain.read_ahead = False
    assert [e.key.flat_path for e in plain] == expected[:1100]
    assert {name for name, _ in calls} == {threading.current_thread().name}


def test_an_error_of_the_call_ahead_is_raised_when_its_page_is_taken(datastore_client,
                                                                     monkeypatch):
    seed_dataset(TEST_PROJECT, [NamespaceSpec("", 700)])
    calls, _ = _watch_calls(monkeypatch, datastore_client, fail_at=2)
    pages = fetch(datastore_client.query(kind="Item"), RetryPolicy()).pages
    assert len(list(next(pages))) > 0
    with pytest.raises(gexc.ServiceUnavailable):
        next(pages)
