"""Every query of a run is decoded from the raw response (pipeline.datastore.decode): through the
real emulator, page after page, the entities are the client's own, in the same order."""
from __future__ import annotations

import datetime


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
