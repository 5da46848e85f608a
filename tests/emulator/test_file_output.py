"""File output: one file per namespace (and per job), re-runs, and the BigQuery export job."""
from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os
import re
from collections import Counter

import pytest
from google.cloud import datastore

from devtools.seed import NamespaceSpec, seed_dataset
from pipeline.core import export_format as bq
from pipeline.sinks.files.write import SchemaFn
from tests.support import TEST_PROJECT
from tests.support.runs import IN_PROCESS, run_mapper

SPEC = [NamespaceSpec("", 120), NamespaceSpec("acme", 90), NamespaceSpec("small", 7)]
SMALL = ["--shards", "4", "--slice_entities", "25"]


def ok(result) -> None:
    assert result.code == 0, (f"exited {result.code}\nstderr:\n{result.stderr[-6000:]}\n"
                              f"stdout:\n{result.stdout[-2000:]}")


NAMESPACES = ["__default__", "acme", "small", "empty"]


def layout(labels) -> list:
    """A completed namespace's files: its records and its manifest."""
    return [f for label in labels for f in (f"namespaces/{label}.jsonl", f"manifests/{label}.json")]


def all_files(root) -> list:
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


@pytest.fixture
def multi(emulator) -> dict:
    """Items in three namespaces, and a namespace ("empty") with no Item at all."""
    items = seed_dataset(TEST_PROJECT, SPEC)
    c = datastore.Client(project=TEST_PROJECT, namespace="empty")
    c.put(datastore.Entity(c.key("Other", "x")))
    return items


def test_every_entity_once_in_its_namespace_file_and_the_job_file_is_the_union(multi, tmp_path):
    out = tmp_path / "out"
    result = run_mapper("export_keys", [*SMALL, "--job_file=true"], output=str(out),
                        runner=IN_PROCESS)
    ok(result)
    job = out / "export_keys"
    # Layout: one file per namespace (even the empty one) and its manifest, the job file, the
    # summary; no temp files, no lease.
    assert all_files(job) == sorted(["all.jsonl", "report.html", "summary.json", *layout(NAMESPACES)])
    assert set(result.files) == {"__default__", "acme", "small", "empty"}
    assert result.files["empty"] == []
    for ns, paths in multi.items():
        label = ns or "__default__"
        got = Counter(tuple(r["key"]) for r in result.files[label])
        assert got == Counter(tuple(p) for p in paths), label  # exactly once, nothing else
        assert all(r["namespace"] == ns for r in result.files[label])
    with open(job / "all.jsonl", encoding="utf-8") as f:
        union = [json.loads(line) for line in f]
    assert Counter(json.dumps(r, sort_keys=True) for r in union) == Counter(
        json.dumps(r, sort_keys=True) for r in result.records)
    assert result.summary["totals"]["records"] == len(union) == sum(len(v) for v in multi.values())


def test_rerun_is_refused_by_default_and_replace_replaces_completely(multi, tmp_path):
    out = tmp_path / "out"
    ok(run_mapper("export_keys", [*SMALL, "--job_file=true"], output=str(out)))
    job = out / "export_keys"
    # As if a namespace of the first run was deleted since: the run wrote its file and its
    # summary names it (a file no summary names is not this tool's: see the next test).
    stale = job / "namespaces" / "gone.jsonl"
    stale.write_text('{"stale": true}\n', encoding="utf-8")
    summary = json.loads((job / "summary.json").read_text(encoding="utf-8"))
    assert "namespaces/acme.jsonl" in summary["files"] and "all.jsonl" in summary["files"]
    summary["files"].append("namespaces/gone.jsonl")
    (job / "summary.json").write_text(json.dumps(summary), encoding="utf-8")

    again = run_mapper("export_keys", SMALL, output=str(out))
    assert again.code == 2
    assert str(job) in again.stderr and "--output_mode=replace" in again.stderr, again.stderr
    assert stale.exists()

    c = datastore.Client(project=TEST_PROJECT, namespace="small")
    c.delete_multi([c.key(*p) for p in multi["small"][:3]])
    replaced = run_mapper("export_keys", [*SMALL, "--output_mode=replace"], output=str(out))
    ok(replaced)
    # Old and new never mix: the stale file and the old job file are gone, the rest is new.
    assert all_files(job) == sorted(["report.html", "summary.json", *layout(NAMESPACES)])
    assert Counter(tuple(r["key"]) for r in replaced.files["small"]) == Counter(
        tuple(p) for p in multi["small"][3:])


def test_a_file_the_tool_did_not_write_is_never_replaced_nor_cleared(multi, tmp_path):
    """Issue 22: a user's own file under OUTPUT/JOB, beside a complete run's output or a
    failed run's leftovers, makes every mode refuse at launch, naming it; it stays."""
    out = tmp_path / "out"
    ok(run_mapper("export_keys", SMALL, output=str(out)))
    job = out / "export_keys"
    mine = job / "namespaces" / "notes.txt"
    mine.write_text("mine", encoding="utf-8")
    before = all_files(job)
    for mode in ("refuse", "replace", "resume"):
        again = run_mapper("export_keys", [*SMALL, f"--output_mode={mode}"], output=str(out))
        assert again.code == 2, again.stderr
        errors = [ln for ln in again.stderr.splitlines() if ln.startswith("error:")]
        assert len(errors) == 1 and "namespaces/notes.txt" in errors[0], again.stderr
        assert "Traceback" not in again.stderr
    assert all_files(job) == before and mine.read_text(encoding="utf-8") == "mine"
    # A failed run's leftovers (its summary says failed) beside the same file: refused too.
    summary = json.loads((job / "summary.json").read_text(encoding="utf-8"))
    (job / "summary.json").write_text(json.dumps({**summary, "status": "failed"}),
                                      encoding="utf-8")
    again = run_mapper("export_keys", SMALL, output=str(out))
    assert again.code == 2 and "namespaces/notes.txt" in again.stderr, again.stderr
    assert mine.exists() and (job / "namespaces" / "acme.jsonl").exists()
    mine.unlink()  # without it, the failed run's recorded files are cleared and re-written
    ok(run_mapper("export_keys", SMALL, output=str(out)))


def test_a_symlink_the_root_or_a_strangers_directory_is_refused_at_launch(multi, tmp_path):
    """Issue 22: OUTPUT/JOB a link to another directory (a run cleared the files it pointed
    to), --output / and a non-empty directory holding none of our output: refused, one line,
    nothing touched."""
    elsewhere = tmp_path / "precious"
    (elsewhere / "namespaces").mkdir(parents=True)
    (elsewhere / "namespaces" / "acme.jsonl").write_text('{"keep": 1}\n', encoding="utf-8")
    out = tmp_path / "out"
    out.mkdir()
    (out / "export_keys").symlink_to(elsewhere, target_is_directory=True)
    for mode in ("refuse", "replace"):
        r = run_mapper("export_keys", [*SMALL, f"--output_mode={mode}"], output=str(out))
        assert r.code == 2 and "symbolic link" in r.stderr, r.stderr
    assert (elsewhere / "namespaces" / "acme.jsonl").read_text(encoding="utf-8") == '{"keep": 1}\n'
    for root in ("/", "/."):
        r = run_mapper("export_keys", SMALL, output=root)
        assert r.code == 2 and "root of the file system" in r.stderr, r.stderr
    src = tmp_path / "src"
    src.mkdir()
    (src / "setup.py").write_text("", encoding="utf-8")
    r = run_mapper("export_keys", SMALL, output=str(src))
    assert r.code == 2 and "--allow_nonempty_output" in r.stderr, r.stderr
    assert os.listdir(src) == ["setup.py"]
    ok(run_mapper("export_keys", [*SMALL, "--allow_nonempty_output"], output=str(src)))


def test_runs_started_at_the_same_moment_into_one_output_one_proceeds(multi, tmp_path):
    """Issue 22: four CLIs started at once into one output (7 of 8 went ahead together, and
    their records mixed, when the lease was read, then written): exactly one runs, the others
    stop with one error: line each, and the output holds every record once."""
    import subprocess
    import sys

    out = tmp_path / "out"
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    procs = [subprocess.Popen([sys.executable, "-m", "pipeline", "--job", "export_keys",
                               "--project", TEST_PROJECT, *SMALL, "--output", str(out)],
                              cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    results = [(p.wait(300), *p.communicate()) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2, 2, 2], [(c, e[-600:]) for c, _, e in results]
    for code, _, err in results:
        if code == 2:
            errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
            assert len(errors) == 1 and "Traceback" not in err, err
    job = out / "export_keys"
    summary = json.loads((job / "summary.json").read_text(encoding="utf-8"))
    records = [json.loads(line) for f in sorted((job / "namespaces").glob("*.jsonl"))
               for line in f.read_text(encoding="utf-8").splitlines()]
    keys = Counter((r["namespace"], tuple(r["key"])) for r in records)
    assert set(keys.values()) == {1} and len(keys) == summary["totals"]["records"]
    expected = {(ns, tuple(p)) for ns, paths in multi.items() for p in paths}
    assert set(keys) == expected


def test_a_job_chooses_its_encoder_and_suffix(multi, tmp_path):
    out = tmp_path / "out"
    ok(run_mapper("csv_keys", ["--job_module", "tests.support.jobs_for_tests", *SMALL],
                  output=str(out)))
    job = out / "csv_keys"
    assert sorted(os.listdir(job / "namespaces")) == [
        "__default__.csv", "acme.csv", "empty.csv", "small.csv"]
    lines = (job / "namespaces" / "small.csv").read_text(encoding="utf-8").splitlines()
    assert sorted(lines) == sorted(",".join(map(str, p)) for p in multi["small"])


# --- export_entities ---------------------------------------------------------------------------

T1 = dt.datetime(2026, 11, 27, 12, 30, 45, 123456, tzinfo=dt.timezone.utc)


def put_export_data(c_default, c_acme) -> list:
    inner = datastore.Entity()
    inner.update({"city": "Zürich", "zip": 8001, "tags": ["a", "b"]})
    e1 = datastore.Entity(c_default.key("Item", 1), exclude_from_indexes=("blob",))
    e1.update({
        "title": "héllo wörld ✓", "n": 5, "price": 2.5, "ok": True, "when": T1,
        "blob": b"\x00\xffbytes", "tags": ["x", "y"], "nums": [1, 2, 3],
        "address": inner, "owner": c_default.key("User", "alice"), "mixed": 7,
        "Name": "upper", "name": "lower", "order-id": "A-1", "bad": float("nan"),
        "nothing": None, "items": [inner],
    })
    e2 = datastore.Entity(c_default.key("Parent", "p", "Item", "two"))
    e2.update({"title": "second", "mixed": "seven", "when": T1 + dt.timedelta(days=1),
               "address": _entity({"street": "Main"})})
    e3 = datastore.Entity(c_acme.key("Item", 3))
    e3.update({"title": "acme", "tags": [], "price": float("inf")})
    c_default.put_multi([e1, e2])
    c_acme.put(e3)
    return [e1, e2, e3]


def _entity(props: dict) -> datastore.Entity:
    e = datastore.Entity()
    e.update(props)
    return e


BQ_TYPES = {"STRING": str, "INTEGER": int, "FLOAT": (int, float), "BOOLEAN": bool,
            "BYTES": str, "TIMESTAMP": str}


def check_against_schema(row: dict, fields: list, where: str = "") -> None:
    """Every field of the row is in the schema, with a value of a compatible type."""
    by_name = {f["name"]: f for f in fields}
    assert len({n.lower() for n in by_name}) == len(by_name), f"case clash in schema {where}"
    for name, value in row.items():
        assert name in by_name, f"{where}{name} not in schema"
        f = by_name[name]
        values = value if f["mode"] == "REPEATED" else [value]
        if f["mode"] == "REPEATED":
            assert isinstance(value, list), (where, name, value)
        assert value is not None or f["mode"] == "NULLABLE", (where, name)
        for v in values:
            if v is None:
                assert f["mode"] == "NULLABLE", (where, name)  # arrays never hold null
                continue
            if f["type"] == "RECORD":
                assert isinstance(v, dict), (where, name, v)
                check_against_schema(v, f["fields"], f"{where}{name}.")
            else:
                assert isinstance(v, BQ_TYPES[f["type"]]), (where, name, v, f["type"])
                if f["type"] == "TIMESTAMP":
                    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC", v), v
                if f["type"] == "BYTES":
                    base64.b64decode(v, validate=True)


def check_schema_valid(fields: list) -> None:
    names = set()
    for f in fields:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,299}", f["name"]), f
        assert f["name"].lower() not in names
        names.add(f["name"].lower())
        assert f["type"] in {"STRING", "INTEGER", "FLOAT", "BOOLEAN", "BYTES", "TIMESTAMP",
                             "RECORD"}, f
        assert f["mode"] in {"NULLABLE", "REPEATED"}
        if f["type"] == "RECORD":
            assert f["fields"], f
            check_schema_valid(f["fields"])


def test_export_entities_round_trips_and_writes_a_matching_schema(emulator, tmp_path):
    c = datastore.Client(project=TEST_PROJECT)
    acme = datastore.Client(project=TEST_PROJECT, namespace="acme")
    put_export_data(c, acme)
    out = tmp_path / "out"
    result = run_mapper("export_entities", ["--job_file=true"], output=str(out))
    ok(result)
    job = out / "export_entities"
    assert all_files(job) == sorted(["all.jsonl", "report.html", "schema.json", "summary.json",
                                     *layout(["__default__", "acme"])])
    schema = json.loads((job / "schema.json").read_text(encoding="utf-8"))
    check_schema_valid(schema)
    for row in result.records:
        check_against_schema(row, schema)
    fields = {f["name"]: f for f in schema}

    rows = {json.dumps(r["__key__"]["path"], sort_keys=True): r for r in result.records}
    r1 = rows[json.dumps([{"kind": "Item", "id": 1, "name": None}], sort_keys=True)]
    assert r1["__key__"] == {"namespace": "", "path": [{"kind": "Item", "id": 1, "name": None}],
                             "id": 1, "name": None}
    assert r1["title"] == "héllo wörld ✓" and r1["n"] == 5 and r1["price"] == 2.5
    assert r1["ok"] is True and r1["when"] == "2026-11-27 12:30:45.123456 UTC"
    assert base64.b64decode(r1["blob"]) == b"\x00\xffbytes"
    assert r1["tags"] == ["x", "y"] and r1["nums"] == [1, 2, 3]
    assert r1["address"] == {"city": "Zürich", "zip": 8001, "tags": ["a", "b"]}
    assert r1["items"] == [{"city": "Zürich", "zip": 8001, "tags": ["a", "b"]}]
    assert r1["owner"]["path"] == [{"kind": "User", "id": None, "name": "alice"}]
    assert "bad" not in r1 and "nothing" not in r1  # NaN -> null, null -> omitted
    # Mixed types: STRING of JSON text.
    assert fields["mixed"]["type"] == "STRING" and "INTEGER, STRING" in fields["mixed"]["description"]
    assert r1["mixed"] == "7"
    # Names differing in case, and an invalid name: renamed, the original in the description.
    assert fields["Name"]["type"] == "STRING" and r1["Name"] == "upper"
    lower = [f for f in schema if f.get("description", "").startswith('Datastore property "name"')]
    assert len(lower) == 1 and r1[lower[0]["name"]] == "lower" and lower[0]["name"] != "name"
    dash = [f for f in schema if f.get("description", "").startswith('Datastore property "order-id"')]
    assert len(dash) == 1 and dash[0]["name"].startswith("order_id_") and r1[dash[0]["name"]] == "A-1"
    assert fields["address"]["type"] == "RECORD" and fields["items"]["mode"] == "REPEATED"
    assert {f["name"] for f in fields["address"]["fields"]} == {"city", "zip", "tags", "street"}

    r2 = rows[json.dumps([{"kind": "Parent", "id": None, "name": "p"},
                          {"kind": "Item", "id": None, "name": "two"}], sort_keys=True)]
    assert r2["__key__"]["name"] == "two" and r2["__key__"]["id"] is None
    assert r2["mixed"] == '"seven"' and r2["address"] == {"street": "Main"}
    assert r2["when"] == "2026-11-28 12:30:45.123456 UTC"
    assert "n" not in r2 and "tags" not in r2  # missing properties: absent
    (r3,) = result.files["acme"]
    assert r3["__key__"]["namespace"] == "acme" and r3["tags"] == [] and "price" not in r3
    assert result.summary["totals"]["counters"]["nonfinite_floats"] == 2


# --- the pure conversion -----------------------------------------------------------------------

def test_conversion_rules_unit():
    rows = [{"a": ("INTEGER", 1), "l": ("LIST", [("INTEGER", 1)])},
            {"a": ("STRING", "x"), "l": ("INTEGER", 2)},
            {"z": ("LIST", [("STRING", "s"), ("NULL", None)])},
            {"e": ("RECORD", {})}]
    fn = SchemaFn()
    accs = []
    for r in rows:  # one accumulator per "worker", merged
        accs.append(fn.add_input(fn.create_accumulator(), r))
    result = fn.extract_output(fn.merge_accumulators(accs))
    s = {f["name"]: f for f in result["schema"]}
    assert s["a"]["type"] == s["l"]["type"] == s["z"]["type"] == s["e"]["type"] == "STRING"
    assert all(s[n]["mode"] == "NULLABLE" for n in "alze")
    lines = [json.loads(bq.encode(r, result)) for r in rows]
    assert lines == [{"a": "1", "l": "[1]"}, {"a": '"x"', "l": "2"}, {"z": '["s", null]'},
                     {"e": "{}"}]


def test_column_names_are_valid_unique_and_stable():
    names = ["Name", "name", "NAME", "order-id", "1st", "_TABLE_x", "ok", "é"]
    cols = bq.column_names(names)
    assert cols["NAME"] == "NAME"  # first by code point keeps its name
    assert len({c.lower() for c in cols.values()}) == len(names)
    assert all(bq.valid_column(c) for c in cols.values())
    assert cols["ok"] == "ok" and cols["1st"].startswith("p_1st_") and cols["é"].startswith("__")
    assert cols == bq.column_names(list(reversed(names)))
    assert bq.timestamp_text(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02 03:04:05.000000 UTC"
    n = []
    assert bq.typed_value(math.inf, lambda: n.append(1)) == ("FLOAT", None) and n == [1]


# --- Cloud Storage (gcp-storage-emulator) ------------------------------------------------------

def test_gs_output_every_entity_once_and_the_job_file_is_the_union(multi, gcs_emulator_env):
    bucket = gcs_emulator_env.new_bucket("out")
    output = f"gs://{bucket.name}/exports"
    result = run_mapper("export_keys", [*SMALL, "--job_file=true"], output=output)
    ok(result)
    prefix = "exports/export_keys/"
    blobs = {b.name[len(prefix):]: b for b in gcs_emulator_env.client.list_blobs(bucket.name,
                                                                                  prefix=prefix)}
    assert sorted(blobs) == sorted(["all.jsonl", "report.html", "summary.json",
                                    *layout(NAMESPACES)])  # no temp objects, no lease left

    def rows(name):
        text = blobs[name].download_as_bytes().decode("utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    union = []
    for ns in ["", "acme", "small", "empty"]:
        got = rows(f"namespaces/{ns or '__default__'}.jsonl")
        assert Counter(tuple(r["key"]) for r in got) == Counter(
            tuple(p) for p in multi.get(ns, [])), ns
        union += got
    assert Counter(json.dumps(r, sort_keys=True) for r in rows("all.jsonl")) == Counter(
        json.dumps(r, sort_keys=True) for r in union)

    again = run_mapper("export_keys", SMALL, output=output)
    assert again.code == 2 and f"{output}/export_keys" in again.stderr, again.stderr
    ok(run_mapper("export_keys", [*SMALL, "--output_mode=replace"], output=output))
    names = sorted(b.name[len(prefix):] for b in gcs_emulator_env.client.list_blobs(
        bucket.name, prefix=prefix))
    assert names == sorted(["report.html", "summary.json", *layout(NAMESPACES)]), names
    # Issue 22, on gs:// too: an object no run recorded writing is never replaced; every mode
    # refuses, naming it.
    bucket.blob(prefix + "namespaces/mine.jsonl").upload_from_string(b"mine")
    for mode in ("refuse", "replace"):
        r = run_mapper("export_keys", [*SMALL, f"--output_mode={mode}"], output=output)
        assert r.code == 2 and "namespaces/mine.jsonl" in r.stderr, r.stderr
    assert bucket.blob(prefix + "namespaces/mine.jsonl").download_as_bytes() == b"mine"
    assert len(list(gcs_emulator_env.client.list_blobs(bucket.name, prefix=prefix))) == \
        len(names) + 1
    # ... and a bucket prefix holding someone else's objects is not a place to write into
    bucket.blob("theirs/data.csv").upload_from_string(b"x")
    r = run_mapper("export_keys", SMALL, output=f"gs://{bucket.name}/theirs")
    assert r.code == 2 and "--allow_nonempty_output" in r.stderr, r.stderr


def test_files_under_sees_every_file_below_and_remove_tree_removes_all(tmp_path):
    from pipeline.sinks.files.layout import files_under, job_dir, remove_tree

    job = job_dir(str(tmp_path), "job")
    assert files_under(job) == []
    (tmp_path / "job" / ".shards-abc" / "tmp").mkdir(parents=True)
    assert files_under(job) == []  # empty directories hold no output
    (tmp_path / "job" / ".shards-abc" / "acme-00000-of-00001").write_text("x\n")
    assert files_under(job) == [str(tmp_path / "job" / ".shards-abc" / "acme-00000-of-00001")]
    (tmp_path / "other").mkdir()
    remove_tree(job)
    assert sorted(os.listdir(tmp_path)) == ["other"]
