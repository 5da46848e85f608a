"""Datastore's errors turned into advice (``pipeline.datastore.errors``)."""
from __future__ import annotations

from google.api_core import exceptions as gexc

from pipeline.api.query import PropertyRange, ResolvedQuery
from pipeline.datastore.errors import explain, index_yaml
from pipeline.errors import MapperError, QueryError


def _rq(**kw):
    base = dict(kinds=("Order",), namespaces=None, equalities=(("status", "open"), ("region", "eu")),
                prop_range=PropertyRange("created", lo=1), ancestor=None, keys_only=True)
    base.update(kw)
    return ResolvedQuery(**base)


def test_explain_missing_index_gives_an_index_yaml_entry():
    err = gexc.FailedPrecondition("no matching index found. recommended index is: - kind: Order")
    out = explain(err, _rq(), "shop", "the read query")
    assert isinstance(out, QueryError)
    msg = str(out)
    assert "namespace shop" in msg and "index.yaml" in msg
    snippet = "\n".join(["indexes:", "- kind: Order", "  properties:", "  - name: status",
                         "  - name: region", "  - name: created"])
    assert snippet in msg
    assert "no matching index found" in msg  # what Datastore said is kept


def test_explain_missing_index_with_ancestor_and_without_range():
    err = gexc.FailedPrecondition("The query requires an index")
    msg = str(explain(err, _rq(prop_range=None, ancestor=(("Customer", "c1"),)), "", "x"))
    assert "namespace __default__" in msg
    assert ("- kind: Order\n  ancestor: yes\n  properties:\n  - name: status\n"
            "  - name: region") in msg
    assert "created" not in msg.split("indexes:", 1)[1].split("(Datastore said")[0]


def test_index_yaml_orders_equalities_then_range():
    y = index_yaml(_rq(), "created", "Order")
    lines = y.splitlines()
    names = [line.split("name: ")[1] for line in lines if "name:" in line]
    assert names == ["status", "region", "created"]
    assert lines[:2] == ["indexes:", "- kind: Order"]


def test_explain_other_errors():
    rq = _rq()
    out = explain(gexc.PermissionDenied("caller lacks permission"), rq, "a", "listing")
    assert isinstance(out, MapperError) and "Datastore User role" in str(out)
    out = explain(gexc.Unauthenticated("no creds"), rq, "a", "listing")
    assert "Datastore User role" in str(out)
    out = explain(gexc.NotFound("database missing"), rq, "a", "listing")
    assert "--project" in str(out) and "--database" in str(out)
    assert isinstance(explain(gexc.InvalidArgument("bad"), rq, "a", "x"), QueryError)
    # A FailedPrecondition that is not about indexes is not turned into index advice.
    out = explain(gexc.FailedPrecondition("transaction expired"), rq, "a", "x")
    assert "index.yaml" not in str(out) and "transaction expired" in str(out)
