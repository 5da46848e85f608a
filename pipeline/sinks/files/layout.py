"""Where a run's files live, defined once for every writer and side file.

Layout under ``OUTPUT/JOB/`` (``OUTPUT`` a local directory or ``gs://bucket/prefix``)::

    namespaces/<namespace>.jsonl   one file per namespace read, even an empty one; the default
                                   namespace is ``namespaces/__default__.jsonl`` (Datastore
                                   reserves names of the form ``__*__``: no real namespace takes it)
    namespaces/<ns>/<kind>.jsonl   instead, one per (namespace, kind) for a job reading several
                                   kinds (names escaped as ``core.units.path_part`` says)
    schemas/<kind>.json            the BigQuery schema per kind, for such a job writing typed rows
    all.jsonl                      the whole job (every namespace file, in namespace order), with
                                   ``--job_file=true``; it lives outside ``namespaces/`` so no
                                   namespace name can collide with it
    summary.json                   the run's summary, written last ("status": succeeded or failed)
    schema.json                    the BigQuery schema of a job writing typed rows
    dead_letter.jsonl              the entities the job failed on and the rows BigQuery rejected
    manifests/<unit>.json          a unit (namespace, or namespace/kind) completed: its totals and
                                   the run's identity
                                   (job, parameters, query, read time), for --output_mode=resume
    failed-runs/<run id>/          what a failed run left that must not be lost (its dead letters)
    runs/<run id>/                 a run of a job that writes back: its summary.json,
                                   changes.jsonl (before/after samples), dead_letter.jsonl and
                                   undo/ (every entity changed or deleted, as it was); never
                                   replaced nor counted as a previous run's output
    .lease.json                    the lease of the run writing here (``lease.py``)
    .shards-<run id>/              temporary shards while the run writes; removed after success
    .dead_letters-<run id>/        dead letters as the workers write them; composed at the end

The suffix is the job's ``file_suffix`` (default ``.jsonl``). What is already there is the
launch's business (``prepare.prepare_output``): a complete run's output is refused, replaced,
or never mixed with a new run's; a dead run's leftovers are cleared, or resumed.
"""
from __future__ import annotations

import logging
import os

from apache_beam.io.filesystems import FileSystems

from pipeline.core.units import path_part

log = logging.getLogger(__name__)

NAMESPACES_DIR = "namespaces"
SCHEMAS_DIR = "schemas"
MANIFESTS_DIR = "manifests"
FAILED_RUNS_DIR = "failed-runs"
RUNS_DIR = "runs"
UNDO_DIR = "undo"
CHANGES_FILE = "changes.jsonl"
JOB_FILE_STEM = "all"
SHARDS_PREFIX = ".shards-"
DEAD_LETTERS_PREFIX = ".dead_letters-"
LEASE_FILE = ".lease.json"
DEFAULT_SUFFIX = ".jsonl"
SUMMARY_FILE = "summary.json"
REPORT_FILE = "report.html"
SCHEMA_FILE = "schema.json"
DEAD_LETTER_FILE = "dead_letter.jsonl"


def job_dir(output: str, job_name: str) -> str:
    return FileSystems.join(output.rstrip("/"), job_name)


def job_path(output: str, job_name: str, name: str) -> str:
    """A file directly under ``OUTPUT/JOB/`` (summary.json, schema.json, ...)."""
    return FileSystems.join(job_dir(output, job_name), name)


def part_path(output: str, job_name: str, part: str, suffix: str = DEFAULT_SUFFIX) -> str:
    """A unit's file: ``namespaces/<part><suffix>`` (``Unit.part``: ``acme`` or ``acme/Order``)."""
    return FileSystems.join(job_dir(output, job_name), NAMESPACES_DIR, part + suffix)


def schema_path(output: str, job_name: str, kind: str, case_insensitive: bool = False) -> str:
    """A kind's BigQuery schema, for a job writing typed rows of several kinds (named as the
    kind's files are: ``path_part``, never the same for two kinds)."""
    return FileSystems.join(job_dir(output, job_name), SCHEMAS_DIR,
                            path_part(kind, case_insensitive) + ".json")


def job_file_path(output: str, job_name: str, suffix: str = DEFAULT_SUFFIX) -> str:
    return FileSystems.join(job_dir(output, job_name), JOB_FILE_STEM + suffix)


def manifest_path(output: str, job_name: str, part: str) -> str:
    """A completed unit's manifest: ``manifests/<part>.json``."""
    return FileSystems.join(job_dir(output, job_name), MANIFESTS_DIR, part + ".json")


def run_dir(output: str, job_name: str, run_id: str) -> str:
    """A writing run's own directory: ``runs/<run id>/`` (kept by every output mode)."""
    return FileSystems.join(job_dir(output, job_name), RUNS_DIR, run_id)


def shard_dir(output: str, job_name: str, run_id: str) -> str:
    return FileSystems.join(job_dir(output, job_name), SHARDS_PREFIX + run_id)


def files_under(path: str) -> list[str]:
    """Every file below ``path``, at any depth, dot-names too (empty if nothing is there)."""
    try:
        return [m.path for m in FileSystems.match([path.rstrip("/") + "/**"])[0].metadata_list]
    except Exception:  # nothing there (Beam may raise for a pattern matching nothing)
        return []


def entries_under(path: str) -> tuple[list[str], list[str]]:
    """(every file below ``path``, every symbolic link at or below it), never following a
    link: a link in the output could lead a clean-up outside it. ``gs://`` has no links."""
    if "://" in path:
        return files_under(path), []
    if os.path.islink(path.rstrip("/")):
        return [], [path.rstrip("/")]
    files, links = [], []
    for top, dirs, names in os.walk(path, followlinks=False):
        for name in dirs + names:
            full = os.path.join(top, name)
            if os.path.islink(full):
                links.append(full)
            elif name in names:
                files.append(full)
    return files, links


def relative(path: str, top: str) -> str:
    """``path`` below ``top`` as a '/'-separated relative name (how run records name files)."""
    top = top.rstrip("/") + "/"
    return path[len(top):] if path.startswith(top) else os.path.relpath(path, top).replace(
        os.sep, "/")


def remove_tree(path: str) -> None:
    """Delete ``path`` and everything below it: a local directory, or every object under a
    ``gs://`` prefix (Cloud Storage has no directories to delete)."""
    if path.startswith("gs://"):
        left = files_under(path)
        if left:
            FileSystems.delete(left)
    elif FileSystems.exists(path):
        FileSystems.delete([path])

