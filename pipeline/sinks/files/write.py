"""Records to files: one file per unit (a namespace, or a kind in a namespace when the job reads
several kinds; and optionally one for the whole job), in the layout of
``pipeline.sinks.files.layout``.

How: ``fileio.WriteToFiles`` writes the records as shards (dynamic destination = the unit's
path part) under ``.shards-<run id>/``; the shards of each unit are then grouped and composed
(``compose``) into the final file, so a final name appears only once its file is complete.

``WriteNamespaceFiles`` writes lines; ``WriteOutput`` is the mapper's files sink around it: it
encodes a job's records by the job's ``encode`` (or, for a job yielding the export format's typed
rows, by the schema merged over the whole run, written as ``schema.json``).
"""
from __future__ import annotations

import hashlib

import logging
import uuid
from typing import Any, Callable, Optional

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.value_provider import StaticValueProvider

from pipeline.config import JobConfig, OutputConfig
from pipeline.core.records import RecordError, record_json
from pipeline.core.totals import NamespaceOutput
from pipeline.core import export_format
from pipeline.sinks.files.compose import compose
from pipeline.sinks.files.layout import (
    DEFAULT_SUFFIX,
    SCHEMA_FILE,
    job_file_path,
    job_path,
    part_path,
    remove_tree,
    schema_path,
    shard_dir,
)
from pipeline.sinks.inputs import all_records, labelled_parts

log = logging.getLogger(__name__)


class _LineSink(fileio.FileSink):
    """Writes (namespace, line) elements: the line, UTF-8, and a newline."""

    def open(self, fh):
        self._fh = fh

    def write(self, element):
        self._fh.write(element[1].encode("utf-8"))
        self._fh.write(b"\n")

    def flush(self):
        self._fh.flush()


#: A shard name longer than this (a long namespace and a long kind) names its part by digest.
SHARD_NAME_KEPT = 160


def shard_stem(destination: str) -> str:
    """A part (``acme/Order``) as one file name: ``acme~~Order`` (a part's components hold at
    most one ``~`` each, never two in a row, so the first ``~~`` is the ``/``); one too long for
    a file name (two escaped parts of up to 185 characters each) becomes ``~`` and the SHA-256
    of the part, which no part's own stem starts with."""
    stem = destination.replace("/", "~~")
    if len(stem.encode("utf-8")) <= SHARD_NAME_KEPT:
        return stem
    return "~" + hashlib.sha256(destination.encode("utf-8")).hexdigest()


class _ShardNaming:
    """A shard's file name: ``[<prefix>~]<stem>-00000-of-00001`` (``shard_stem``). Each writer
    of a shard directory has its own prefix (fileio numbers shards per writer: two writers would
    name their first shard of a namespace alike, and the second would replace the first). The
    name is never parsed: each shard's destination comes with it from ``WriteToFiles``."""

    def __init__(self, prefix: str = ""):
        self.prefix = f"{prefix}~" if prefix else ""

    def __call__(self, window, pane, shard_index, total_shards, compression, destination) -> str:
        return (f"{self.prefix}{shard_stem(destination)}"
                f"-{shard_index:05d}-of-{total_shards:05d}")


def _create_empty(path: str) -> None:
    """An empty file (complete as soon as it exists), its directory made if needed."""
    parent = path.rsplit("/", 1)[0]
    try:
        FileSystems.mkdirs(parent)
    except IOError:
        pass
    FileSystems.create(path).close()


class ComposeNamespaceFn(beam.DoFn):
    """(part, {'shards': [file names], 'known': [key]}) -> (key, final path): a unit's shards
    into ``namespaces/<part><suffix>`` (``key``: what the unit is known as, else its part)."""

    def __init__(self, shard_dir: str, output: str, job_name: str, suffix: str):
        self.shard_dir, self.output, self.job_name, self.suffix = shard_dir, output, job_name, suffix

    def process(self, kv):
        part, groups = kv
        names = sorted(set(groups["shards"]))
        sources = [FileSystems.join(self.shard_dir, n) for n in names]
        final = part_path(self.output, self.job_name, part, self.suffix)
        if sources:
            compose(sources, final)
        elif not FileSystems.exists(final):  # no records: an empty file
            _create_empty(final)
        known = list(groups.get("known", ()))
        yield (known[0] if known else part), final


class _ComposeJobFileFn(beam.DoFn):
    def __init__(self, destination: Optional[str], extra: tuple = ()):
        self.destination, self.extra = destination, extra

    def process(self, pairs):
        if self.destination:
            ordered = sorted([p for _, p in pairs] + [p for _, p in self.extra])
            if ordered:
                compose(ordered, self.destination, delete_sources=False)
            elif not FileSystems.exists(self.destination):
                FileSystems.create(self.destination).close()
        yield pairs


class _CleanupFn(beam.DoFn):
    """Removes the run's shard directory once every namespace file is composed."""

    def __init__(self, shard_dir: str):
        self.shard_dir = shard_dir

    def process(self, pairs):
        try:
            remove_tree(self.shard_dir)
        except Exception as e:  # leftovers are only temp files: say so, do not fail the run
            log.warning("could not remove the temporary shards in %s: %s", self.shard_dir, e)
        yield pairs


class WriteNamespaceFiles(beam.PTransform):
    """PCollection[(part, record)] (or a tuple (records, known)) -> PCollection[(key, final
    path)], one per part: the file ``namespaces/<part><suffix>``. With ``known``, ``records``
    may be a tuple of PCollections, each written where it is made (``pipeline.sinks.inputs``).

    ``known`` (optional second input: (part, key) for every unit of the run) makes a unit
    without records get its (empty) file too, and names it by ``key`` in the output (by its
    part otherwise). ``job_file``: also compose ``OUTPUT/JOB/all<suffix>``, with the files of
    ``existing`` ((part, path) pairs a resumed run keeps) in their place.
    """

    def __init__(self, output: str, job_name: str,
                 encoder: Optional[Callable[[Any], str]] = record_json,
                 *, suffix: str = DEFAULT_SUFFIX, job_file: bool = False,
                 run_id: Optional[str] = None, shards: Optional[int] = None,
                 existing: tuple = ()):
        super().__init__()
        self.output = output.rstrip("/")
        self.job_name = job_name
        self.encoder = encoder  # None: the records are lines already
        self.suffix = suffix or DEFAULT_SUFFIX
        self.job_file = job_file
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.shards = shards
        self.existing = tuple(existing)

    @property
    def shard_dir(self) -> str:
        return shard_dir(self.output, self.job_name, self.run_id)

    def expand(self, pvalue):
        if isinstance(pvalue, tuple):
            records, namespaces = pvalue
        else:
            records, namespaces = pvalue, None
        encoder = self.encoder
        shards = self.shard_dir
        written = []
        for n, part in labelled_parts(records):
            # Each input is written where it is made, not flattened first: the local runner
            # would hold a flattened input whole until every producer is done.
            if encoder is not None:
                part = part | f"Encode{n}" >> beam.Map(lambda kv: (kv[0], encoder(kv[1])))
            written.append(
                part
                | f"WriteShards{n}" >> fileio.WriteToFiles(
                    path=shards, destination=lambda kv: kv[0], sink=lambda dest: _LineSink(),
                    file_naming=_ShardNaming(n),
                    # A temporary directory per part: fileio looks there for its destination's
                    # files after moving its own, and would take the other part's (a unit read
                    # partly at planning, partly in ranges) for orphans, and warn of them.
                    temp_directory=StaticValueProvider(str, FileSystems.join(shards, f"tmp{n}")),
                    shards=self.shards)
                | f"ShardsByNamespace{n}" >> beam.Map(
                    lambda fr: (fr.destination, fr.file_name)))
        files = written[0] if len(written) == 1 else written | "AllShards" >> beam.Flatten()
        groups = {"shards": files}
        if namespaces is not None:
            groups["known"] = namespaces
        paths = (
            groups
            | "GroupShards" >> beam.CoGroupByKey()
            | "Compose" >> beam.ParDo(ComposeNamespaceFn(shards, self.output, self.job_name,
                                                         self.suffix)))
        job_file = job_file_path(self.output, self.job_name, self.suffix) if self.job_file else None
        (paths
         | "AllNamespaceFiles" >> beam.combiners.ToList()
         | "ComposeJobFile" >> beam.ParDo(_ComposeJobFileFn(job_file, self.existing))
         | "RemoveShards" >> beam.ParDo(_CleanupFn(shards)))
        return paths


class _CheckedLine:
    """The job's ``encode``, held to one line of text per record."""

    def __init__(self, encode: Callable[[Any], str]):
        self.encode_fn = encode

    def __call__(self, record: Any) -> str:
        text = self.encode_fn(record)
        if not isinstance(text, str):
            raise RecordError(f"encode() returned a {type(text).__name__}, not a line of text")
        if "\n" in text or "\r" in text:
            raise RecordError("encode() returned text with a line break: one record is one line")
        return text


class SchemaFn(beam.CombineFn):
    """Typed rows -> the export's columns and schema (``export_format.columns_from_fields``):
    the types seen, merged across workers."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, row):
        export_format.add_fields(acc, row)
        return acc

    def merge_accumulators(self, accs):
        accs = iter(accs)
        out = next(accs, None) or {}
        for a in accs:
            export_format.merge_fields(out, a)
        return out

    def extract_output(self, acc):
        return export_format.columns_from_fields(acc)


class _WriteSchemaFn(beam.DoFn):
    """The merged schema(s), once every file is composed: ``schema.json`` for a job reading one
    kind; ``schemas/<kind>.json``, one per kind (one BigQuery table each), for several."""

    def __init__(self, output: str, job_name: str, per_kind: bool,
                 case_insensitive: bool = False):
        self.output, self.job_name, self.per_kind = output, job_name, per_kind
        self.case_insensitive = case_insensitive

    def process(self, _files, results):
        written = []
        for kind, result in sorted(results.items()):
            path = (schema_path(self.output, self.job_name, kind, self.case_insensitive)
                    if self.per_kind
                    else job_path(self.output, self.job_name, SCHEMA_FILE))
            with FileSystems.create(path) as f:
                f.write(export_format.schema_text(result).encode("utf-8"))
            written.append(path)
        yield written


class WriteOutput(beam.PTransform):
    """(records, namespaces) -> (namespace, NamespaceOutput): the mapper's files sink
    (``records``: one PCollection of (Unit, line), or a tuple of them, each written as it comes).

    The job's ``encode`` and ``file_suffix`` choose the format (default: JSON lines,
    ``.jsonl``); the records arrive encoded (``encode``: the reading step applies it, so a
    record that cannot be written is its entity's dead letter). A job with ``typed_rows``
    yields the export format's typed rows: their schema is merged first (a CombineFn), each
    row is then encoded as that schema says, and the schema is written to
    ``OUTPUT/JOB/schema.json`` once every namespace file is composed.
    """

    def __init__(self, job: JobConfig, output: OutputConfig, per_kind: bool = False):
        super().__init__()
        self.job, self.output, self.per_kind = job, output, per_kind

    @property
    def encode(self) -> Optional[Callable[[Any], str]]:
        """A record -> its line, in the reading step (typed rows wait for their schema)."""
        spec = self.job.spec
        return None if spec.typed_rows else _CheckedLine(spec.encode)

    def expand(self, pvalue):
        records, units = pvalue
        spec, name, out = self.job.spec, self.job.name, self.output
        existing = tuple((r.part, r.output) for r in out.resumed if r.output)
        known = units | "KnownUnits" >> beam.Map(lambda u: (u.part, (u.namespace, u.kind)))
        files_options = dict(suffix=spec.file_suffix, job_file=out.job_file, run_id=out.run_id,
                             existing=existing)
        if not spec.typed_rows:
            lines = tuple(part | f"ByPart{n}" >> beam.MapTuple(lambda unit, line: (unit.part, line))
                          for n, part in labelled_parts(records))
            files = (lines, known) | "NamespaceFiles" >> WriteNamespaceFiles(
                out.directory, name, None, **files_options)
        else:
            # The schema is merged per kind (one table per kind), each row encoded by its own:
            # every row waits for the whole run's schema.
            records = all_records(records)
            schemas = (records
                       | "RowsByKind" >> beam.MapTuple(lambda unit, row: (unit.kind, row))
                       | "MergeSchema" >> beam.CombinePerKey(SchemaFn()))
            lines = records | "EncodeRows" >> beam.Map(
                lambda kv, results: (kv[0].part, export_format.encode(kv[1],
                                                                      results[kv[0].kind])),
                results=beam.pvalue.AsDict(schemas))
            files = (lines, known) | "NamespaceFiles" >> WriteNamespaceFiles(
                out.directory, name, None, **files_options)
            (files
             | "AllFiles" >> beam.combiners.ToList()
             | "WriteSchema" >> beam.ParDo(
                 _WriteSchemaFn(out.directory, name, self.per_kind, out.case_insensitive),
                 results=beam.pvalue.AsDict(schemas)))
        return files | "Outputs" >> beam.MapTuple(lambda key, path: (key, NamespaceOutput(path)))


