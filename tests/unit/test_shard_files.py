"""``WriteNamespaceFiles`` given its records in several parts (planning's and ReadRanges', as
``MapDatastore`` hands them over): each part written where it is made, every line once in its
namespace's file, the shard directory gone afterwards. Beam's local runner, no emulator."""
from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.sinks.files.layout import part_path
from pipeline.sinks.files.write import WriteNamespaceFiles, _ShardNaming
from tests.support.runs import IN_PROCESS


def _run(tmp_path, parts: dict[str, list[tuple[str, str]]]) -> None:
    with beam.Pipeline(options=PipelineOptions(IN_PROCESS)) as p:
        pcolls = tuple(p | f"Part{name}" >> beam.Create(rows) for name, rows in parts.items())
        known = p | "Known" >> beam.Create([("acme", "acme"), ("", ""), ("empty", "empty")])
        (pcolls, known) | WriteNamespaceFiles(str(tmp_path), "job", lambda line: line,
                                              run_id="r1")


def test_parts_writing_the_same_namespace_keep_every_line_once(tmp_path):
    planned = [("acme", f"planned-{i}") for i in range(5)] + [("", "planned-default")]
    read = [("acme", f"read-{i}") for i in range(7)]
    _run(tmp_path, {"Planned": planned, "Read": read})
    acme = open(part_path(str(tmp_path), "job", "acme", ".jsonl"), encoding="utf-8").read()
    assert sorted(acme.splitlines()) == sorted(line for _, line in planned[:5] + read)
    default = open(part_path(str(tmp_path), "job", "", ".jsonl"), encoding="utf-8").read()
    assert default.splitlines() == ["planned-default"]
    assert open(part_path(str(tmp_path), "job", "empty", ".jsonl"), encoding="utf-8").read() == ""
    assert not list((tmp_path / "job").glob(".shards-*"))


def test_each_part_names_its_shards_apart():
    first, second = _ShardNaming("0"), _ShardNaming("1")
    args = (None, None, 0, 1, None, "acme")
    assert first(*args) != second(*args)
    assert _ShardNaming("")(*args) == "acme-00000-of-00001"
