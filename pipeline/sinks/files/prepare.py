"""The output's launch-time work: what ``OUTPUT/JOB`` already holds, decided before anything is
read, and this run's lease on it.

- Only this tool's files are ever deleted: what a run record names (``ownership``). Anything
  else under ``OUTPUT/JOB``, or a symbolic link there, is refused at launch, naming it, in
  every mode; so are the root, the home directory and a non-empty ``OUTPUT`` holding no output
  of ours (unless ``--allow_nonempty_output``).
- Nothing there: the run takes its lease (which proves the location is a writable directory).
- A complete run's output (``summary.json`` with status ``succeeded``): ``refuse`` (default)
  stops, ``replace`` removes that run's files first, ``resume`` has nothing to do and says so.
- Another run holding a live lease: refused, naming that run, in every mode.
- The leftovers of a dead run (failed, killed, interrupted: no complete summary, no live
  lease): cleared, so a failed run never blocks its re-run; its dead letters are kept under
  ``failed-runs/RUN/``. With ``resume`` the units it completed (a namespace, or a kind in a
  namespace; each has a manifest) are kept, checked against this run (job, parameters, query,
  read time), and not read again.
- The lease is taken before anything is removed, and only if it is still as the plan saw it
  (``lease.take``): of two runs started at the same moment, one proceeds.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import errno
import json
import logging
import os
from typing import Optional

from apache_beam.io.filesystems import FileSystems

from pipeline.config import RunConfig
from pipeline.core.deadletters import identity
from pipeline.core.terminal import escape as safe
from pipeline.errors import UsageError
from pipeline.sinks.files import deadletters, lease, ownership
from pipeline.sinks.files.durable import write_whole
from pipeline.sinks.files.layout import (
    DEAD_LETTER_FILE,
    FAILED_RUNS_DIR,
    LEASE_FILE,
    MANIFESTS_DIR,
    RUNS_DIR,
    SUMMARY_FILE,
    entries_under,
    job_dir,
    job_path,
    manifest_path,
    relative,
)

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ResumedUnit:
    """A unit (a kind in a namespace) a failed run completed: not read again; its totals and
    output carried over."""

    namespace: str
    kind: str
    part: str
    totals: dict  # Totals.to_dict()
    output: Optional[str]


def manifest(run: RunConfig, namespace: str, kind: str, part: str, totals: dict,
             output: Optional[str]) -> dict:
    """What a completed unit's manifest records (``UnitCompleted`` writes it)."""
    return {"job": run.job.name, "params": dict(run.job.params),
            "query": run.read.query.fingerprint(),
            "read_time": run.read.read_time.isoformat() if run.read.read_time else None,
            "namespace": namespace, "kind": kind, "part": part, "output": output,
            "totals": totals, "run_id": run.output.run_id,
            "completed": dt.datetime.now(dt.timezone.utc).isoformat()}


def _read_json(path: str) -> Optional[dict]:
    try:
        with FileSystems.open(path) as f:
            return json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError):
        return None


def _probe_directory(output: str, job_name: str) -> None:
    """OUTPUT is a directory this process can write (the lease then proves it), and not a
    place whose every file the user would be wrong to give us: the root or the home
    directory."""
    if "://" in output and not output.startswith("gs://"):
        raise UsageError(f"--output {output}: use a local directory or gs://BUCKET/PATH")
    if output.startswith("gs://"):
        return
    path = os.path.abspath(output)
    real = os.path.realpath(path)
    if real == os.path.dirname(real):
        raise UsageError(f"--output {output} is the root of the file system: choose a directory "
                         "of its own for the output (e.g. /data/mapper-output)")
    home = os.path.realpath(os.path.expanduser("~"))
    if real == home:
        raise UsageError(f"--output {output} is your home directory: choose a directory of its "
                         f"own for the output (e.g. {os.path.join(home, 'mapper-output')})")
    probe = path
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"--output {output} is a file, not a directory")
    if not os.path.isdir(probe):
        raise UsageError(f"--output {output} is not writable: {probe} is a file, not a "
                         "directory")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--output {output} is not writable ({probe} does not let this user "
                         "create files)")


#: Why a file cannot be made, by errno: what the user can do about it.
_WHY = {
    errno.ENOENT: "the file system there takes no new files (as /proc)",
    errno.EACCES: "this user may not create files there",
    errno.EPERM: "the file system there lets no file be created (as /sys)",
    errno.EROFS: "the file system is read-only",
    errno.ENOTDIR: "a part of the path is a file, not a directory",
    errno.EEXIST: "a file is in the way where a directory goes",
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
}


def not_writable(err: BaseException) -> str:
    """Why the output's first file could not be written, in words: the path that failed and
    the reason (an ``OSError`` found in ``err`` or what it wraps), else the error itself."""
    todo, seen = [err], set()
    while todo:
        e = todo.pop(0)
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            where = f"cannot create {e.filename}: " if e.filename else ""
            why = _WHY.get(e.errno)
            return safe(f"{where}{e.strerror or os.strerror(e.errno)}"
                        + (f"; {why}" if why else ""))
        details = getattr(e, "exception_details", None)  # Beam's BeamIOError: {path: error}
        todo += [e.__cause__, e.__context__, *e.args,
                 *(details.values() if isinstance(details, dict) else ())]
    return safe(f"{type(err).__name__}: {' '.join(str(err).split())[:300]}")


def _holds_our_output(output: str) -> bool:
    """Whether OUTPUT holds a job directory of this tool's (a lease, a summary or a writing
    run's summary in it)."""
    for pattern in ("*/" + LEASE_FILE, "*/" + SUMMARY_FILE, f"*/{RUNS_DIR}/*/{SUMMARY_FILE}"):
        try:
            if FileSystems.match([FileSystems.join(output, pattern)], limits=[1])[0].metadata_list:
                return True
        except Exception:  # nothing matched (Beam may raise for that)
            continue
    return False


def _check_not_foreign_directory(output: str, job_name: str, allow: bool) -> None:
    """A non-empty OUTPUT that holds no earlier output of this tool is someone else's place:
    refused unless the user says it is meant (--allow_nonempty_output). An empty OUTPUT/JOB
    directory (a launch refused at its lease leaves one) counts as nothing."""
    if allow:
        return
    if output.startswith("gs://"):
        try:
            some = FileSystems.match([output.rstrip("/") + "/**"], limits=[1])[0].metadata_list
        except Exception:
            some = []
        others = [m.path for m in some]
    else:
        try:
            others = sorted(os.listdir(output))
        except (FileNotFoundError, NotADirectoryError):
            others = []
        if job_name in others and not entries_under(job_dir(output, job_name))[0]:
            others.remove(job_name)
    if others and not _holds_our_output(output):
        raise UsageError(
            f"--output {output} is not empty and holds no earlier output of this tool (e.g. "
            f"{safe(others[0])}): choose a new or empty directory, or pass "
            "--allow_nonempty_output=true if the job's files belong there")


def case_insensitive_directory(output: str) -> bool:
    """Whether OUTPUT is on a file system that ignores case (macOS's and Windows' defaults), so
    that ``Order`` and ``order`` must not share a file there (see ``core.units.path_part``):
    the nearest existing directory with a letter in its name is looked up with that name's case
    swapped. Cloud Storage's names are case-sensitive."""
    if "://" in output:
        return False
    probe = os.path.abspath(output)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    while True:
        parent, name = os.path.split(probe)
        if name != name.swapcase():
            swapped = os.path.join(parent, name.swapcase())
            try:
                return os.path.exists(swapped) and os.path.samefile(swapped, probe)
            except OSError:
                return False
        if parent == probe:
            return False
        probe = parent


def _keep_dead_letters(run: RunConfig, found: list[str], old_run: str) -> list[dict]:
    """A dead run's dead letters (its final file and the parts its workers wrote), moved to
    ``failed-runs/RUN/dead_letter.jsonl``; returns them."""
    out = run.output
    final = job_path(out.directory, run.job.name, DEAD_LETTER_FILE)
    parts = [p for p in found if "/.dead_letters-" in p.replace("\\", "/")]
    sources = ([final] if final in found else []) + parts
    if not sources:
        return []
    letters = deadletters.read_letters(sources)
    seen: dict = {}
    for letter in letters:
        seen.setdefault(identity(letter), letter)
    kept = job_path(out.directory, run.job.name, f"{FAILED_RUNS_DIR}/{old_run}/{DEAD_LETTER_FILE}")
    write_whole(kept, deadletters._lines(seen.values()))
    log.info("kept the %d dead letter(s) of the failed run %s in %s", len(seen), old_run, kept)
    return list(seen.values())


def _identity(run: RunConfig) -> dict:
    """What a resumed run must repeat: recorded in every manifest and in the run's lease."""
    return {"job": run.job.name, "params": dict(run.job.params),
            "query": run.read.query.fingerprint()}


def _check_manifest(run: RunConfig, m: dict, path: str) -> None:
    for field, value in _identity(run).items():
        if m.get(field) != value:
            raise UsageError(
                f"--output_mode=resume: {path} was written by a run with another {field} "
                f"({m.get(field)!r}, this run: {value!r}): resume only the same job, parameters "
                "and query, or use --output_mode=replace")


def _resume(run: RunConfig, found: list[str], manifests: list[str]) -> tuple:
    """(the run, with the failed run's read time; its completed namespaces)."""
    if run.job.spec.typed_rows:
        raise UsageError(f"--output_mode=resume: job {run.job.name} writes typed rows, whose files "
                         "are encoded by the schema of the whole run, so a completed namespace "
                         "cannot be kept: use --output_mode=replace")
    resumed, read_times = [], set()
    for path in sorted(manifests):
        m = _read_json(path)
        if m is None:
            continue  # unreadable: that namespace is read again
        _check_manifest(run, m, path)
        if m.get("output") and not m["output"].startswith("gs://") and \
                not FileSystems.exists(m["output"]):
            continue  # its file is gone: read it again
        read_times.add(m.get("read_time"))
        resumed.append(ResumedUnit(m["namespace"], m["kind"], m["part"], m["totals"],
                                   m.get("output")))
    if len(read_times) > 1:
        raise UsageError(f"--output_mode=resume: the manifests name different read times "
                         f"{sorted(map(str, read_times))}: use --output_mode=replace")
    read = run.read
    if read_times:
        (recorded,) = read_times
        current = read.read_time.isoformat() if read.read_time else None
        if recorded != current:
            if read.read_time is None or recorded is None or not _asked_start(run):
                raise UsageError(f"--output_mode=resume: the failed run read at {recorded}, this "
                                 f"one at {current}: resume with the same --read_time (or "
                                 "start, which resumes the failed run's snapshot)")
            read = dataclasses.replace(read, read_time=dt.datetime.fromisoformat(recorded))
            log.info("--output_mode=resume: reading the failed run's snapshot, %s", recorded)
    return dataclasses.replace(run, read=read), resumed


def _asked_start(run: RunConfig) -> bool:
    """--read_time start resolves to the launch time: a resumed run takes the failed run's."""
    return (run.read.read_time_option or "").strip().lower() == "start"


@dataclasses.dataclass(frozen=True)
class OutputPlan:
    """What ``plan_output`` decided, nothing done yet: ``take_output`` does it, once every
    other launch check has passed (a refused launch changes nothing under the output)."""

    run: RunConfig  # with the output's run state (resumed namespaces, a resumed read time)
    remove_all: bool = False  # --output_mode=replace of a complete run's output
    clear: tuple = ()  # files a dead run left, to remove
    old_run: Optional[str] = None
    found: tuple = ()  # what OUTPUT/JOB held (this tool's files only: the plan refuses others)
    previous_complete: bool = False  # clear holds a complete writing run's files, not a dead one's
    lease_version: object = None  # the lease as the plan saw it: taken only if still so


def _listing(where: str) -> list[str]:
    """Every file under OUTPUT/JOB; refuses a symbolic link there (a clean-up must never
    reach through one to files outside the output)."""
    files, links = entries_under(where)
    if links:
        raise UsageError(
            f"{safe(where)} holds {len(links)} symbolic link(s) (e.g. {safe(sorted(links)[0])}): "
            "this tool never writes or deletes through a link; give --output a real directory")
    return files


def _refuse_foreign(where: str, judged: ownership.Ownership) -> None:
    if judged.foreign:
        shown = ", ".join(safe(n) for n in judged.foreign[:5])
        more = f" and {len(judged.foreign) - 5} more" if len(judged.foreign) > 5 else ""
        raise UsageError(
            f"{safe(where)} holds {len(judged.foreign)} file(s) that no run of this tool recorded "
            f"writing: {shown}{more}. This tool deletes or replaces only its own files: move "
            "them elsewhere, or choose another --output")


def _check_dead_letter_file(run: RunConfig) -> None:
    """A ``--dead_letter`` file outside ``OUTPUT/JOB`` (where the ownership rules decide) is a
    place the user chose: a run that would replace a file already there is refused, naming it
    (it may be anyone's; this tool cannot prove it wrote it)."""
    out = run.output
    path = out.dead_letter
    if not path:
        return
    if out.directory and path.startswith(job_dir(out.directory, run.job.name) + "/"):
        return
    there = FileSystems.exists(path) if "://" in path else os.path.lexists(path)
    if there:
        raise UsageError(f"--dead_letter {safe(path)} already exists: a run would replace it "
                         "with its dead letters; move it away, or choose another file")


def plan_output(run: RunConfig, mode: str = "refuse",
                allow_nonempty: bool = False) -> OutputPlan:
    """Decide what ``OUTPUT/JOB`` holds (see the module's docstring); refuse what must be."""
    _check_dead_letter_file(run)
    out = run.output
    if not out.directory:
        return OutputPlan(run)
    name = run.job.name
    where = job_dir(out.directory, name)
    _probe_directory(out.directory, name)
    if case_insensitive_directory(out.directory):
        out = dataclasses.replace(out, case_insensitive=True)
        run = dataclasses.replace(run, output=out)
    every = _listing(where)
    if not every:
        _check_not_foreign_directory(out.directory, name, allow_nonempty)
        if mode == "resume":
            log.info("--output_mode=resume: %s holds nothing to resume; reading everything", where)
        return OutputPlan(run)
    held, version = lease.read_versioned(out.directory, name)
    if held is not None:
        live, why = lease.alive(held)
        if live:
            raise UsageError(f"{where} is being written by another run: {why}; wait for it, "
                             "or choose another --output")
    rel = {relative(p, where): p for p in every}
    judged = ownership.judge(rel, lambda n: _read_bytes(rel[n]), where)
    _refuse_foreign(where, judged)
    # A writing run's own directory (runs/RUN/: its summary, changes, undo log) is never a
    # previous run's output to refuse or replace: dry runs come before the real one.
    found = [rel[n] for n in sorted(judged.owned)]
    lease_file = lease.lease_path(out.directory, name)
    if not found:
        if mode == "resume":
            log.info("--output_mode=resume: %s holds nothing to resume; reading everything", where)
        return OutputPlan(run, lease_version=version)
    summary_file = job_path(out.directory, name, SUMMARY_FILE)
    summary = _read_json(summary_file) if summary_file in found else None
    if summary is not None and summary.get("status", "succeeded") == "succeeded":
        if mode == "replace":
            return OutputPlan(run, remove_all=True, found=tuple(found), lease_version=version)
        if mode == "resume":
            raise UsageError(f"--output_mode=resume: {where} holds a complete run's output, "
                             "nothing to resume: use --output_mode=replace to run again")
        raise UsageError(
            f"{where} already holds output of a previous run ({len(found)} entries, e.g. "
            f"{sorted(found)[0]}): pass --output_mode=replace to replace it, or choose another "
            "--output")
    previous = _last_writing_run(every) if summary is None else None
    if previous is not None and held is None:
        records = [p for p in found if f"/{MANIFESTS_DIR}/" not in p.replace("\\", "/")
                   and _size(p) > 0]
        if records and mode != "replace":
            raise UsageError(
                f"{where} holds the records of the previous run {previous} ({len(records)} "
                f"non-empty files, e.g. {sorted(records)[0]}): pass --output_mode=replace to "
                "replace them, or choose another --output")
        # A writing job keeps its summary in runs/RUN/: the files beside it are that complete
        # run's (empty record files, manifests), replaced by this run, not a dead run's.
        return OutputPlan(run, clear=tuple(found), old_run=previous, found=tuple(found),
                          previous_complete=True, lease_version=version)
    # The leftovers of a dead run.
    old_run = (held or {}).get("run_id") or (summary or {}).get("run_id") or "unknown"
    manifests = [p for p in found if f"/{MANIFESTS_DIR}/" in p.replace("\\", "/")]
    resumed: list = []
    if mode == "resume" and manifests:
        run, resumed = _resume(run, found, manifests)
    elif mode == "resume" and held is not None and "job" in held:  # (older leases: no job)
        # The dead run completed nothing, but it was a run of some job: resuming it with
        # another job, parameters or query is a mistake to refuse, as when it completed some.
        _check_manifest(run, held, lease_file)
        log.info("--output_mode=resume: the failed run %s completed no namespace; reading "
                 "everything", old_run)
    keep = {r.output for r in resumed if r.output}
    keep |= {manifest_path(out.directory, name, r.part) for r in resumed}
    clear = tuple(p for p in found if p not in keep)
    run = dataclasses.replace(run, output=dataclasses.replace(out, resumed=tuple(resumed)))
    return OutputPlan(run, clear=clear, old_run=old_run, found=tuple(found),
                      lease_version=version)


def _read_bytes(path: str) -> Optional[bytes]:
    try:
        with FileSystems.open(path) as f:
            return f.read()
    except Exception:  # unreadable: it proves nothing
        return None


def _size(path: str) -> int:
    try:
        return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    except Exception:  # gone meanwhile, or unreadable: count it as data (refuse, lose nothing)
        return 1


def _last_writing_run(files: list) -> Optional[str]:
    """The run id of the newest succeeded summary under runs/ (a writing job's), or None."""
    best = None
    for p in files:
        parts = p.replace("\\", "/").split("/")
        if len(parts) >= 3 and parts[-1] == SUMMARY_FILE and parts[-3] == RUNS_DIR:
            s = _read_json(p)
            if s and s.get("status", "succeeded") == "succeeded":
                key = (s.get("finished") or "", s.get("run_id") or parts[-2])
                best = max(best, key) if best else key
    return best[1] if best else None


def take_output(plan: OutputPlan, local: bool = True) -> Optional[dict]:
    """Take this run's lease (only if it is still as the plan saw it: of two runs started at
    the same moment, one proceeds), then carry the plan out: remove a replaced output, or clear
    a dead run's leftovers keeping its dead letters. Only files the plan proved this tool's
    are removed, never the lease just taken. Returns the lease (None without --output)."""
    run = plan.run
    out = run.output
    if not out.directory:
        return None
    where = job_dir(out.directory, run.job.name)
    try:
        # The lease inherits the record of every file of this tool's the plan found: if this
        # run stops half-way through clearing them, the next run can still prove them ours.
        held = lease.take(out.directory, run.job.name, out.run_id, local, _identity(run),
                          expected=plan.lease_version,
                          kept=tuple(relative(p, where) for p in plan.found))
    except lease.LeaseTaken:
        raise
    except Exception as e:
        raise UsageError(f"--output {out.directory} is not writable: {not_writable(e)}") from None
    lease_file = lease.lease_path(out.directory, run.job.name)
    if plan.remove_all:
        log.info("--output_mode=replace: removing the previous output in %s (%d files)",
                 where, len(plan.found))
        doomed = [p for p in plan.found if p != lease_file]
        if doomed:  # this tool's files only: everything but runs/ and failed-runs/
            FileSystems.delete(doomed)
        for d in sorted({os.path.dirname(c) for c in doomed if not c.startswith("gs://")},
                        key=len, reverse=True):
            _remove_empty_dirs(d, where)
    elif plan.found:
        letters = _keep_dead_letters(run, list(plan.found), plan.old_run)
        doomed = [p for p in plan.clear if p != lease_file]
        if doomed:
            FileSystems.delete(doomed)
        for d in {os.path.dirname(c) for c in doomed if not c.startswith("gs://")}:
            _remove_empty_dirs(d, where)
        if plan.previous_complete:
            log.info("%s: replacing the %d file(s) of the previous run %s (its summary stays "
                     "in %s/%s/)", where, len(doomed), plan.old_run, RUNS_DIR, plan.old_run)
        else:
            log.info("%s: cleared %d file(s) that the dead run %s left%s", where,
                     len(doomed), plan.old_run,
                     f"; resuming {len(out.resumed)} namespace(s) it completed"
                     if out.resumed else "")
        resumed = {(r.namespace, r.kind) for r in out.resumed}
        carried = [d for d in letters if (d.get("namespace"), d.get("kind")) in resumed]
        if carried and out.dead_letter_parts:
            deadletters.write_part(out.dead_letter_parts, "resumed.jsonl", carried)
    return held


def _remove_empty_dirs(path: str, top: str) -> None:
    top = os.path.abspath(top)
    path = os.path.abspath(path)
    while path.startswith(top) and path != top:
        try:
            os.rmdir(path)
        except OSError:
            return
        path = os.path.dirname(path)
