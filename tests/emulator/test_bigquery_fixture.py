"""The BigQuery emulator fixture (tests/bigquery_emulator.py) works: datasets, nested schemas, inserts."""

from __future__ import annotations

from google.cloud import bigquery

SCHEMA = [
    bigquery.SchemaField("id", "INTEGER", mode="REQUIRED"),
    bigquery.SchemaField("name", "STRING"),
    bigquery.SchemaField("tags", "STRING", mode="REPEATED"),
    bigquery.SchemaField("address", "RECORD", fields=[
        bigquery.SchemaField("city", "STRING"),
        bigquery.SchemaField("zip", "INTEGER"),
    ]),
    bigquery.SchemaField("visits", "RECORD", mode="REPEATED", fields=[
        bigquery.SchemaField("day", "STRING"),
        bigquery.SchemaField("count", "INTEGER"),
    ]),
]

ROWS = [
    {"id": 1, "name": "ada", "tags": ["a", "b"], "address": {"city": "London", "zip": 1},
     "visits": [{"day": "mon", "count": 2}, {"day": "tue", "count": 3}]},
    {"id": 2, "name": "bob", "tags": [], "address": None, "visits": []},
    {"id": 3, "name": None, "tags": ["c"], "address": {"city": None, "zip": 3},
     "visits": [{"day": "wed", "count": None}]},
]


def _create_table(emu, dataset: str, name: str = "people") -> str:
    spec = f"{emu.project}.{dataset}.{name}"
    emu.client.create_table(bigquery.Table(spec, schema=SCHEMA), retry=emu.retry, timeout=emu.timeout)
    return spec


def test_new_dataset_is_unique_and_empty(bigquery_emulator):
    emu = bigquery_emulator
    first, second = emu.new_dataset(), emu.new_dataset("other")
    assert first != second and second.startswith("other_")
    assert list(emu.client.list_tables(first, retry=emu.retry, timeout=emu.timeout)) == []
    assert emu.endpoint == f"http://{emu.host}"


def test_nested_and_repeated_rows_round_trip(bigquery_emulator):
    emu = bigquery_emulator
    spec = _create_table(emu, emu.new_dataset())
    errors = emu.client.insert_rows_json(spec, ROWS, row_ids=[f"r{row['id']}" for row in ROWS],
                                         skip_invalid_rows=True, retry=emu.retry, timeout=emu.timeout)
    assert errors == []
    got = sorted(emu.rows(spec), key=lambda row: row["id"])
    assert got == ROWS
    # "dataset.table" works too (the fixture's project is implied).
    assert len(emu.rows(spec.split(".", 1)[1])) == len(ROWS)


def test_wrong_type_gives_an_insert_error_for_that_row(bigquery_emulator):
    emu = bigquery_emulator
    spec = _create_table(emu, emu.new_dataset())
    rows = [ROWS[0], {"id": 10, "address": {"city": "Paris", "zip": "not a number"}}, ROWS[1]]
    errors = emu.client.insert_rows_json(spec, rows, row_ids=["a", "b", "c"], skip_invalid_rows=True,
                                         retry=emu.retry, timeout=emu.timeout)
    # bqemulator's error 'location' may be wrong: only check which row failed.
    assert [entry["index"] for entry in errors] == [1]
    assert errors[0]["errors"]
    assert sorted(row["id"] for row in emu.rows(spec)) == [1, 2]
