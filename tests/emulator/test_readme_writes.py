"""The docs' worked write-back example (docs/migrate.md, "Your own migration"; it was the
README's), run as printed: its module is cut out of the page, so the documented job is the
tested one."""
from __future__ import annotations

import glob
import json
import os
import re
import sys

from google.cloud import datastore

from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS, run_mapper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def readme_module() -> str:
    with open(os.path.join(ROOT, "docs", "migrate.md"), encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"```python\n(# mymigrations\.py\n.*?)```", text, re.S)
    assert len(blocks) == 1, "docs/migrate.md's mymigrations.py example"
    return blocks[0]


def latest_summary(out, job: str) -> dict:
    paths = sorted(glob.glob(os.path.join(str(out), job, "runs", "*", "summary.json")),
                   key=os.path.getmtime)
    with open(paths[-1], encoding="utf-8") as f:
        return json.load(f)


def test_the_readmes_migration_and_free_mutations_run_as_documented(emulator, tmp_path,
                                                                     monkeypatch):
    (tmp_path / "mymigrations.py").write_text(readme_module(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("mymigrations", None)
    c = datastore.Client(project=TEST_PROJECT, namespace="acme")
    users = []
    for i in range(30):
        u = datastore.Entity(c.key("User", f"u{i}"))
        u.update(name=f"Ada{i} Lovelace", test=(i % 10 == 0))
        users.append(u)
    orders = []
    for i in range(1, 21):
        o = datastore.Entity(c.key("Order", i))
        o.update(customer=f"c{i % 3}", total=i * 10)
        orders.append(o)
    c.put_multi(users + orders)
    out = tmp_path / "out"
    mod = ["--job_module", "mymigrations", "--namespaces", "acme"]

    r = run_mapper("split_name", mod, output=str(out), runner=IN_PROCESS)  # a dry run
    assert r.code == 0, r.stderr[-3000:]
    s = latest_summary(out, "split_name")
    assert s["writes"]["counts"]["changed"] == 27 and s["writes"]["counts"]["deleted"] == 3
    assert all("name" in e for e in c.query(kind="User").fetch())  # nothing written

    r = run_mapper("split_name", [*mod, "--writes=transactional"], output=str(out),
                   runner=IN_PROCESS)
    assert r.code == 0, r.stderr[-3000:]
    now = {e.key.name: e for e in c.query(kind="User").fetch()}
    assert len(now) == 27
    assert all("name" not in e and e["first"].startswith("Ada") and e["last"] == "Lovelace"
               for e in now.values())
    r = run_mapper("split_name", [*mod, "--writes=transactional"], output=str(out),
                   runner=IN_PROCESS)  # idempotent: again, nothing changes
    assert r.code == 0 and latest_summary(out, "split_name")["writes"]["counts"]["changed"] == 0

    r = run_mapper("totals_per_customer", [*mod, "--writes=blind"], output=str(out),
                   runner=IN_PROCESS)
    assert r.code == 0, r.stderr[-3000:]
    totals = list(c.query(kind="CustomerTotal").fetch())
    assert sorted(t["amount"] for t in totals) == [i * 10 for i in range(1, 21)]
