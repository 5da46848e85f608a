"""Records to files: one file per namespace (and optionally one for the whole job).

Layout under ``OUTPUT/JOB/`` (``OUTPUT`` a local directory or ``gs://bucket/prefix``)::

    namespaces/<namespace>.jsonl   one file per namespace read, even an empty one; the default
                                   namespace is ``namespaces/__default__.jsonl`` (Datastore
                                   reserves names of the form ``__*__``: no real namespace takes it)
    all.jsonl                      the whole job (every namespace file, in namespace order), with
                                   ``--job_file=true``; it lives outside ``namespaces/`` so no
                                   namespace name can collide with it
    summary.json                   the run's summary
    .shards-<run id>/              temporary shards while the run writes; removed after success

The suffix is the job's ``file_suffix`` (default ``.jsonl``). Records are encoded one per line by
the job's ``encode(record) -> str`` when it defines one, else as JSON (``record_json``).

How: ``fileio.WriteToFiles`` writes the records as shards (dynamic destination = namespace) under
``.shards-<run id>/``; the shards of each namespace are then grouped and composed (``compose``) into
the final file, so a final name appears only once its file is complete.
"""
from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import uuid
from typing import Any, Callable, Optional, Sequence

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.value_provider import StaticValueProvider

from pipeline.query import namespace_label

log = logging.getLogger(__name__)

NAMESPACES_DIR = "namespaces"
JOB_FILE_STEM = "all"
SHARDS_PREFIX = ".shards-"
DEFAULT_SUFFIX = ".jsonl"


def record_json(record: Any) -> str:
    """The default encoding: one JSON object per line (keys as their flat path, times ISO 8601,
    bytes base64, sets sorted)."""

    def default(v: Any):
        if isinstance(v, dt.datetime):
            return v.isoformat()
        if isinstance(v, (bytes, bytearray)):
            return base64.b64encode(bytes(v)).decode("ascii")
        if hasattr(v, "flat_path"):
            return list(v.flat_path)
        if isinstance(v, (set, frozenset)):
            return sorted(v)
        if isinstance(v, dict) or hasattr(v, "items"):
            return dict(v.items())
        return repr(v)

    return json.dumps(record, default=default, ensure_ascii=False, sort_keys=True)


def job_dir(output: str, job_name: str) -> str:
    return FileSystems.join(output.rstrip("/"), job_name)


def namespace_path(output: str, job_name: str, namespace: str, suffix: str = DEFAULT_SUFFIX) -> str:
    return FileSystems.join(job_dir(output, job_name), NAMESPACES_DIR,
                            namespace_label(namespace) + suffix)


def job_file_path(output: str, job_name: str, suffix: str = DEFAULT_SUFFIX) -> str:
    return FileSystems.join(job_dir(output, job_name), JOB_FILE_STEM + suffix)


def _compose(sources: Sequence[str], destination: str, *, delete_sources: bool = True) -> str:
    from pipeline.sinks.compose import compose

    return compose(list(sources), destination, delete_sources=delete_sources)


class _LineSink(fileio.FileSink):
    """Writes (namespace, line) elements: the line, UTF-8, and a newline."""

    def open(self, fh):
        self._fh = fh

    def write(self, element):
        self._fh.write(element[1].encode("utf-8"))
        self._fh.write(b"\n")

    def flush(self):
        self._fh.flush()


def _shard_naming(window, pane, shard_index, total_shards, compression, destination) -> str:
    return f"{namespace_label(destination)}-{shard_index:05d}-of-{total_shards:05d}"


def _namespace_of(fr) -> str:
    return fr.destination


class ComposeNamespaceFn(beam.DoFn):
    """(namespace, {'shards': [file names], 'known': [...]}) -> (namespace, final path)."""

    def __init__(self, shard_dir: str, output: str, job_name: str, suffix: str):
        self.shard_dir, self.output, self.job_name, self.suffix = shard_dir, output, job_name, suffix

    def process(self, kv):
        namespace, groups = kv
        names = sorted(set(groups["shards"]))
        sources = [FileSystems.join(self.shard_dir, n) for n in names]
        final = namespace_path(self.output, self.job_name, namespace, self.suffix)
        if sources:
            _compose(sources, final)
        elif not FileSystems.exists(final):
            # No records: an empty file (complete as soon as it exists).
            parent = final.rsplit("/", 1)[0]
            try:
                FileSystems.mkdirs(parent)
            except IOError:
                pass
            FileSystems.create(final).close()
        yield namespace, final


class _ComposeJobFileFn(beam.DoFn):
    def __init__(self, destination: Optional[str]):
        self.destination = destination

    def process(self, pairs):
        if self.destination:
            ordered = [p for _, p in sorted(pairs)]
            if ordered:
                _compose(ordered, self.destination, delete_sources=False)
            elif not FileSystems.exists(self.destination):
                FileSystems.create(self.destination).close()
        yield pairs


class _CleanupFn(beam.DoFn):
    """Removes the run's shard directory once every namespace file is composed."""

    def __init__(self, shard_dir: str):
        self.shard_dir = shard_dir

    def process(self, pairs):
        d = self.shard_dir.rstrip("/") + "/"
        try:
            if self.shard_dir.startswith("gs://"):
                left = FileSystems.match([d + "**"])[0].metadata_list
                if left:
                    FileSystems.delete([m.path for m in left])
            elif FileSystems.exists(self.shard_dir):
                FileSystems.delete([self.shard_dir])
        except Exception as e:  # leftovers are only temp files: say so, do not fail the run
            log.warning("could not remove the temporary shards in %s: %s", self.shard_dir, e)
        yield pairs


class WriteNamespaceFiles(beam.PTransform):
    """PCollection[(namespace, record)] (or a tuple (records, namespaces)) ->
    PCollection[(namespace, final path)], one per namespace.

    ``namespaces`` (optional second input: every namespace of the run) makes a namespace without
    records get its (empty) file too. ``job_file``: also compose ``OUTPUT/JOB/all<suffix>``.
    """

    def __init__(self, output: str, job_name: str, encoder: Optional[Callable[[Any], str]] = None,
                 *, suffix: str = DEFAULT_SUFFIX, job_file: bool = False,
                 run_id: Optional[str] = None, shards: Optional[int] = None):
        super().__init__()
        self.output = output.rstrip("/")
        self.job_name = job_name
        self.encoder = encoder or record_json
        self.suffix = suffix or DEFAULT_SUFFIX
        self.job_file = job_file
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.shards = shards

    @property
    def shard_dir(self) -> str:
        return FileSystems.join(job_dir(self.output, self.job_name), SHARDS_PREFIX + self.run_id)

    def expand(self, pvalue):
        if isinstance(pvalue, tuple):
            records, namespaces = pvalue
        else:
            records, namespaces = pvalue, None
        encoder = self.encoder
        shard_dir = self.shard_dir
        files = (
            records
            | "Encode" >> beam.Map(lambda kv: (kv[0], encoder(kv[1])))
            | "WriteShards" >> fileio.WriteToFiles(
                path=shard_dir, destination=lambda kv: kv[0], sink=lambda dest: _LineSink(),
                file_naming=_shard_naming,
                temp_directory=StaticValueProvider(str, FileSystems.join(shard_dir, "tmp")),
                shards=self.shards)
            | "ShardsByNamespace" >> beam.Map(lambda fr: (fr.destination, fr.file_name)))
        groups = {"shards": files}
        if namespaces is not None:
            groups["known"] = namespaces | "KnownNamespaces" >> beam.Map(lambda ns: (ns, None))
        paths = (
            groups
            | "GroupShards" >> beam.CoGroupByKey()
            | "Compose" >> beam.ParDo(ComposeNamespaceFn(shard_dir, self.output, self.job_name,
                                                         self.suffix)))
        job_file = job_file_path(self.output, self.job_name, self.suffix) if self.job_file else None
        (paths
         | "AllNamespaceFiles" >> beam.combiners.ToList()
         | "ComposeJobFile" >> beam.ParDo(_ComposeJobFileFn(job_file))
         | "RemoveShards" >> beam.ParDo(_CleanupFn(shard_dir)))
        return paths


def existing_output(output: str, job_name: str) -> list[str]:
    """What a previous run left under OUTPUT/JOB (file paths; empty if nothing)."""
    d = job_dir(output, job_name)
    try:  # "**": every file below, at any depth, dot-names too (shards a failed run left)
        return [m.path for m in FileSystems.match([d + "/**"])[0].metadata_list]
    except Exception:  # nothing there (Beam may raise for a pattern matching nothing)
        return []


def remove_output(output: str, job_name: str) -> None:
    d = job_dir(output, job_name)
    if d.startswith("gs://"):
        left = existing_output(output, job_name)
        if left:
            FileSystems.delete(left)
    elif FileSystems.exists(d):
        FileSystems.delete([d])
