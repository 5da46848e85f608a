"""The Flex Template's ``metadata.json``: its fields, its parameters against the CLI's options
both ways, its regexes, and gcloud's own reading of it."""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.launch.resolve import MapperOptions
from pipeline.launch.options import (
    OPTIONS,
    Param,
    add_mapper_arguments,
    docs_page,
    help_parser,
    metadata_text,
)
from pipeline.launch.template import MAPPER_OPTIONS, NOT_IN_TEMPLATE
from tests.support.offline_gcp import METADATA, PARAMS, ROOT, fake_gcp_env

#: The mapper options a console user does not get, with the reasons, are the launcher's own
#: (pipeline.launch.template.NOT_IN_TEMPLATE): it refuses them.


# --- metadata.json ----------------------------------------------------------------------------

def mapper_option_dests() -> set:
    parser = argparse.ArgumentParser()
    add_mapper_arguments(parser)
    return {a.dest for a in parser._actions if a.dest != "help"}


def test_metadata_has_the_documented_fields():
    assert set(METADATA) == {"name", "description", "parameters"}
    assert METADATA["name"] and METADATA["description"]
    assert len(PARAMS) == len(METADATA["parameters"]), "duplicate parameter names"
    for p in METADATA["parameters"]:
        assert set(p) <= {"name", "label", "helpText", "isOptional", "regexes"}, p
        assert {"name", "label", "helpText", "isOptional"} <= set(p), p
        assert isinstance(p["isOptional"], bool)
        assert p["label"].strip() and len(p["helpText"]) > 20
        for rx in p.get("regexes", []):
            assert rx.startswith("^") and rx.endswith("$"), rx
            re.compile(rx)
    assert PARAMS["job"]["isOptional"] is False
    assert all(p["isOptional"] for p in METADATA["parameters"] if p["name"] != "job")


def test_metadata_and_the_cli_parser_match_both_ways():
    dests = mapper_option_dests()
    assert set(PARAMS) <= dests, f"declared but unknown to the CLI: {set(PARAMS) - dests}"
    assert set(NOT_IN_TEMPLATE) <= dests, "stale exclusion"
    missing = dests - set(PARAMS) - set(NOT_IN_TEMPLATE)
    assert not missing, f"options a console user needs but the template lacks: {missing}"
    assert not set(PARAMS) & set(NOT_IN_TEMPLATE)
    # The help parser of `python -m pipeline` knows each as --name.
    help_text = help_parser().format_help()
    for name in PARAMS:
        assert f"--{name}" in help_text


def test_the_template_launcher_accepts_exactly_the_parameters():
    """The launcher's allow-list of mapper options is metadata.json's parameters (by dest; an
    alias such as --bigquery_dead_letter goes with its option), nothing of NOT_IN_TEMPLATE."""
    assert {a.dest for a in MAPPER_OPTIONS.values()} == set(PARAMS)
    assert set(PARAMS) <= set(MAPPER_OPTIONS)
    assert MAPPER_OPTIONS["bigquery_dead_letter"].dest == "dead_letter"


SAMPLES = {  # name: (values the console accepts, values it refuses)
    "job": (["count_keys", "export_keys", "a1_b"], ["", "count-keys", "Count", "jobs:X", "a b", "os.path:x"]),
    "params": (["kind=Order", "kind=Order,property=status", "from=2026-11-01,to=2026-11-02", "q=a=b",
                "from=gs://b/a\\,b/undo", "from=gs://b/a\\,b,x=1", "p=a\\\\b", "p=C:\\temp"],
               ["kind", "=x", "kind=Order,", ",kind=Order", "a=1,,b=2", "from=gs://b/a,b/undo"]),
    "namespaces": (["acme", "acme,__default__", "a.b-c_d"], ["", "a,,b", "a b", ",a"]),
    "shards": (["1", "8", "64"], ["0", "-1", "1.5", "x", "08"]),
    "oversampling": (["32"], ["0", "x"]),
    "reads_in_flight": (["1", "4", "9", "10", "64"], ["0", "65", "100", "x", "04", "-1"]),
    "slice_entities": (["2000"], ["0", "2e3"]),
    "slice_seconds": (["30", "2.5", "0.5", ".25", "1.0"], ["0", "0.0", "-1", "x", "1e3", "."]),
    "max_counters": (["1000"], ["0", ""]),
    "output": (["gs://my-bucket/mapper", "gs://my-bucket", "gs://b.example.com/a/b/"],
               ["my-bucket/x", "gs://", "gs://B/x", "/tmp/out", "s3://b/x"]),
    "database": (["my-db", "db1x"], ["My-db", "-db", "db-", "ab", "(default)"]),
    "read_time": (["start", "2026-11-27T12:00:00Z", "2026-11-27T12:00:00.5+01:00", "2026-11-27T12:00Z"],
                  ["yesterday", "2026-11-27", "2026-11-27T12:00:00", "Start"]),
    "allow_empty_kind": (["true", "false"], ["yes", "True", "1", ""]),
    "launch_checks": (["true", "false"], ["no", ""]),
    "output_mode": (["refuse", "replace", "resume"], ["", "Replace", "overwrite"]),
    "datastore_deadline": (["300", "0.5", "60"], ["0", "-1", "x", "1e3", ""]),
    "datastore_call_timeout": (["60", "0.5", "600"], ["0", "-1", "x", "1e3", ""]),
    "max_errors": (["0", "10", "1000"], ["-1", "x", "1.5", "", "01"]),
    "job_file": (["true", "false"], ["yes", ""]),
    "allow_nonempty_output": (["true", "false"], ["yes", ""]),
    "discard_records": (["true", "false"], ["yes", ""]),
    "bigquery_table": (["my-proj:ds.t", "example.com:my-proj:ds.t", "my-proj.ds.t", "ds.t",
                        "ds_1.T-x_9", "ds.t_{namespace}", "p:ds.{namespace}", "p.ds.{namespace}-rows",
                        "ds." + "t" * 1024, "ds." + "a" * 511 + "{namespace}" + "b" * 511],
                       ["", "t", "a.b.c.d", "p:ds", "p:ds.t.x", "ds-1.t", "d s.t", "ds.t t", " ds.t",
                        "ds.té", "ds.t{namespace}{namespace}", "ds.{name}", "ds.{NAMESPACE}",
                        "P:ds.t", "1p:ds.t", "p-:ds.t", "example.com:p.ds.t", ":ds.t", ".ds.t",
                        "ds.", ".t", "p:{namespace}.t", "ds." + "t" * 1025]),
    "bigquery_create": (["true", "false"], ["yes", "True", ""]),
    "bigquery_write_disposition": (["append", "empty"], ["", "Append", "truncate", "WRITE_APPEND"]),
    "dead_letter": (["gs://my-bucket/dead.jsonl", "gs://my-bucket/a/b/dead_letter.jsonl"],
                             ["gs://my-bucket", "gs://my-bucket/", "gs://my-bucket/dir/",
                              "/tmp/dead.jsonl", "dead.jsonl", "s3://b/x", "gs://B/x"]),
    "bigquery_max_bad_rows": (["0", "10", "1000"], ["-1", "x", "1.5", "", "01"]),
    "bigquery_schema_sample": (["1", "1000"], ["0", "-1", "x", "1e3", ""]),
    "bigquery_deadline": (["120", "0.5", "2.5", ".25"], ["0", "0.0", "-1", "x", "1e3", ""]),
    "writes": (["dry_run", "transactional", "blind"], ["", "DRY_RUN", "true", "dry-run"]),
    "undo_log": (["true", "false"], ["", "yes", "1"]),
    "write_batch": (["1", "25", "499", "500"], ["0", "501", "1000", "-1", "x", ""]),
    "transaction_groups": (["1", "25", "500"], ["0", "501", "x", ""]),
    "max_write_rate": (["500", "0.5", "1000.25"], ["0", "-1", "x", ""]),
    "write_rampup": (["auto", "on", "off"], ["", "true", "yes"]),
    "write_workers_hint": (["1", "8", "9999"], ["0", "10000", "x", ""]),
    "changes_sample": (["0", "20", "10000"], ["-1", "10001", "x", ""]),
}


def test_metadata_regexes_accept_good_values_and_reject_bad_ones():
    assert set(SAMPLES) == set(PARAMS), "every declared parameter gets samples"
    for name, (good, bad) in SAMPLES.items():
        rxs = PARAMS[name].get("regexes", [])
        assert rxs, f"{name} has no regex"
        for v in good:
            assert all(re.fullmatch(rx, v) for rx in rxs), f"{name}: {v!r} refused"
        for v in bad:
            assert not all(re.fullmatch(rx, v) for rx in rxs), f"{name}: {v!r} accepted"


def test_values_the_console_accepts_are_accepted_by_the_cli():
    """A value that passes the template's regex reaches the CLI as --name=value: it must parse
    there too (with the same meaning), or the launch fails late on the launcher VM."""
    for name, (good, _) in SAMPLES.items():
        for v in good:
            opts = PipelineOptions([f"--{name}={v}"]).view_as(MapperOptions)
            assert getattr(opts, name) not in (None, []), (name, v)
    opts = PipelineOptions(["--launch_checks=false", "--allow_empty_kind=true", "--shards=3",
                            "--slice_seconds=.25", "--params=a=1,b=2", "--namespaces=x,__default__",
                            "--output=gs://b-1/o", "--database=my-db"]).view_as(MapperOptions)
    assert (opts.launch_checks, opts.allow_empty_kind, opts.shards, opts.slice_seconds) == (
        False, True, 3, 0.25)
    assert opts.params == [[("a", "1"), ("b", "2")]] and opts.namespaces == ["x", "__default__"]


@pytest.mark.timeout(90)
@pytest.mark.skipif(shutil.which("gcloud") is None, reason="gcloud is not installed")
def test_gcloud_accepts_the_metadata_file(tmp_path):
    """gcloud's own parser of the template spec (offline: --print-only writes nothing)."""
    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), **fake_gcp_env(tmp_path)}
    proc = subprocess.run(
        ["gcloud", "dataflow", "flex-template", "build", "gs://bucket-name/t.json",
         "--image=gcr.io/my-project/t:1", "--sdk-language=PYTHON",
         f"--metadata-file={ROOT / 'metadata.json'}", "--print-only", "--project=my-project"],
        env=env, capture_output=True, text=True, timeout=80)
    assert proc.returncode == 0, proc.stderr[-2000:]
    spec = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert [p["name"] for p in spec["metadata"]["parameters"]] == list(PARAMS)
    assert spec["sdkInfo"]["language"] == "PYTHON"


# --- made from the option table -----------------------------------------------------------------

def test_metadata_json_is_made_from_the_option_table():
    """metadata.json is generated: an option's template parameter is declared once, in
    pipeline.launch.options.OPTIONS."""
    assert (ROOT / "metadata.json").read_text(encoding="utf-8") == metadata_text(), (
        "metadata.json is stale: run python -m pipeline.launch.options --write")


def test_the_docs_option_tables_are_made_from_the_option_table():
    page = (ROOT / "docs" / "options.md").read_text(encoding="utf-8")
    assert page == docs_page(page), (
        "docs/options.md's option tables are stale: run python -m pipeline.launch.options --write")


def test_every_option_is_a_template_parameter_or_says_why_not():
    for o in OPTIONS:
        assert isinstance(o.template, Param) or (isinstance(o.template, str)
                                                 and len(o.template) > 20), o.name
    assert [o.name for o in OPTIONS] == [a.dest for a in _parser()._actions if a.dest != "help"]


def test_a_field_names_a_field_of_its_config_section():
    import dataclasses as dc

    from pipeline.config import JobConfig, OutputConfig, ReadConfig, WriteConfig
    sections = {"job": JobConfig, "read": ReadConfig, "output": OutputConfig,
                "write": WriteConfig}
    for o in OPTIONS:
        if o.field:
            section, _, field = o.field.partition(".")
            assert field in {f.name for f in dc.fields(sections[section])}, o.name


def _parser():
    parser = argparse.ArgumentParser()
    add_mapper_arguments(parser)
    return parser
