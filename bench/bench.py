"""Benchmark: the mapper ("ours") against Beam's ReadFromDatastore ("peer") and a bare
google-cloud-datastore loop ("limit"), on one emulator and one seeded dataset.

    .venv/bin/python -m bench.bench [--entities 30000] [--repeats 3] [--json out.json] [--skip-3x]

See bench/README.md.

Every measured read is a whole process (started, timed to its exit), measured the same way:
wall time, CPU seconds of its whole process tree (exact: this process is made a child
subreaper, so every descendant is reaped here or by a parent inside the tree, and the
getrusage(RUSAGE_CHILDREN) difference covers them all) and peak RSS summed over the tree
(psutil, sampled every --sample_ms). The emulator's own CPU is reported separately.
"""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import datetime as dt
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import psutil

from devtools.emulator import DatastoreEmulator
from devtools.seed import NamespaceSpec, seed_dataset

REPO = Path(__file__).resolve().parent.parent
PROJECT = "bench"
KIND = "Item"
NAMESPACE_SHARES = (("", 0.70), ("acme", 0.20), ("globex", 0.09), ("initech", 0.01))
PR_SET_CHILD_SUBREAPER = 36
MB = 1024 * 1024


class BenchError(RuntimeError):
    pass


# ---------------------------------------------------------------- measuring a process tree

@dataclass
class Measurement:
    wall: float              # launch -> exit of the launched process
    tree_exit: float         # launch -> last process of its tree gone
    cpu: float               # user+system seconds of the whole tree (getrusage of reaped children)
    cpu_sampled: float       # the same from psutil samples (a lower bound; cross-check)
    peak_rss: int            # max over samples of the tree's summed RSS (bytes)
    peak_single_rss: int     # largest RSS of any one process of the tree
    processes: int           # processes seen in the tree
    per_process: list        # [{pid, cmd, peak_rss_mb, cpu_s (sampled)}]
    emulator_cpu: float      # CPU seconds the emulator used meanwhile
    other_cpu: float         # CPU seconds the rest of the machine used meanwhile (noise)
    returncode: int
    stdout: str
    stderr_path: str


def set_subreaper() -> bool:
    """Orphaned descendants are reparented to us (not init), so we reap them and their CPU
    time lands in our RUSAGE_CHILDREN."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _cpu_of(procs) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


class Tree:
    """The processes of one run, discovered by sampling (orphans are still tracked)."""

    def __init__(self, root_pid: int):
        self.root_pid = root_pid
        self.procs: dict[int, psutil.Process] = {}
        self.cpu_last: dict[int, float] = {}
        self.rss_peak_single = 0
        self.rss_peak: dict[int, int] = {}
        self.cmd: dict[int, str] = {}
        self.gone: set[int] = set()
        try:
            self.procs[root_pid] = psutil.Process(root_pid)
        except psutil.Error:
            pass

    def discover(self) -> None:
        """Add new descendants of the processes seen so far (one scan of /proc)."""
        children: dict[int, list[int]] = {}
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    stat = f.read()
            except OSError:
                continue
            ppid = int(stat[stat.rindex(b")") + 2:].split(None, 2)[1])
            children.setdefault(ppid, []).append(int(entry.name))
        todo = [pid for pid in self.procs if pid not in self.gone]
        while todo:
            for c in children.get(todo.pop(), ()):
                if c not in self.procs:
                    try:
                        self.procs[c] = psutil.Process(c)
                    except psutil.Error:
                        continue
                    todo.append(c)

    def sample(self) -> int:
        """The summed RSS of the tree now (and each process's CPU so far)."""
        total = 0
        for pid, p in self.procs.items():
            if pid in self.gone:
                continue
            try:
                with p.oneshot():
                    rss = p.memory_info().rss
                    t = p.cpu_times()
                    if pid not in self.cmd:
                        self.cmd[pid] = short_cmd(p.cmdline())
                total += rss
                self.rss_peak_single = max(self.rss_peak_single, rss)
                self.rss_peak[pid] = max(self.rss_peak.get(pid, 0), rss)
                self.cpu_last[pid] = t.user + t.system
            except psutil.Error:
                pass
        return total

    def reap(self) -> None:
        """Reap descendants reparented to us (we are their subreaper)."""
        for pid in self.procs:
            if pid == self.root_pid or pid in self.gone:
                continue
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
                if done:
                    self.gone.add(pid)
            except ChildProcessError:
                pass  # not (or no longer) our child: its parent in the tree reaps it

    def alive(self) -> list[int]:
        out = []
        for pid, p in self.procs.items():
            if pid == self.root_pid or pid in self.gone:
                continue
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(pid)
                elif not p.is_running():
                    self.gone.add(pid)
                else:
                    out.append(pid)  # a zombie: someone still has to reap it
            except psutil.NoSuchProcess:
                self.gone.add(pid)
            except psutil.Error:
                out.append(pid)
        return out

    def kill(self, sig=signal.SIGKILL) -> None:
        for pid, p in self.procs.items():
            if pid in self.gone:
                continue
            try:
                p.send_signal(sig)
            except psutil.Error:
                pass


def short_cmd(argv: list[str]) -> str:
    """'python -m pipeline', 'python -m apache_beam.runners.worker.sdk_worker_main', ..."""
    if not argv:
        return "?"
    if "-m" in argv[:-1]:
        return f"{Path(argv[0]).name} -m {argv[argv.index('-m') + 1]}"
    return " ".join([Path(argv[0]).name, *argv[1:2]])[:80]


def _machine_busy() -> float:
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "guest", 0.0) \
        - getattr(t, "guest_nice", 0.0)


def emulator_procs(emu: DatastoreEmulator) -> list[psutil.Process]:
    try:
        root = psutil.Process(emu.pgid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def measure(cmd: list[str], env: dict, log_dir: Path, name: str, emu: DatastoreEmulator,
            sample_s: float = 0.05, timeout: float = 3600.0, linger: float = 60.0,
            cwd: Optional[Path] = None) -> Measurement:
    emu_before = _cpu_of(emulator_procs(emu))
    cpu_before = _children_cpu()
    busy_before, self_before = _machine_busy(), _cpu_of([psutil.Process()])
    out_path, err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=cwd or REPO, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=err, start_new_session=True)
        tree = Tree(proc.pid)
        peak = 0
        wall: Optional[float] = None
        ticks = 0
        try:
            while True:
                if ticks % 4 == 0:  # new processes every 4th sample: a scan of /proc costs
                    tree.discover()
                ticks += 1
                peak = max(peak, tree.sample())
                tree.reap()
                if wall is None and proc.poll() is not None:
                    wall = time.monotonic() - started
                if wall is not None and not tree.alive():
                    break
                now = time.monotonic() - started
                if now > timeout or (wall is not None and now > wall + linger):
                    tree.kill()
                    proc.wait()
                    raise BenchError(f"{name}: still running after {now:.0f} s; killed "
                                     f"(log: {err_path})")
                time.sleep(sample_s)
        except BaseException:
            if proc.poll() is None or tree.alive():
                tree.kill()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
                tree.reap()
            raise
        tree_exit = time.monotonic() - started
    cpu = _children_cpu() - cpu_before
    emu_cpu = _cpu_of(emulator_procs(emu)) - emu_before
    other = (_machine_busy() - busy_before) - cpu - emu_cpu \
        - (_cpu_of([psutil.Process()]) - self_before)
    return Measurement(
        wall=wall, tree_exit=tree_exit, cpu=cpu, cpu_sampled=sum(tree.cpu_last.values()),
        peak_rss=peak, peak_single_rss=tree.rss_peak_single, processes=len(tree.procs),
        per_process=[{"pid": pid, "cmd": tree.cmd.get(pid, "?"),
                      "peak_rss_mb": round(tree.rss_peak.get(pid, 0) / MB, 1),
                      "cpu_s": round(tree.cpu_last.get(pid, 0.0), 2)} for pid in tree.procs],
        emulator_cpu=emu_cpu, other_cpu=max(0.0, other), returncode=proc.returncode,
        stdout=out_path.read_text(errors="replace"), stderr_path=str(err_path))


# ---------------------------------------------------------------- the contenders

@dataclass
class Run:
    name: str
    entities: int
    m: Measurement
    balance: Optional[dict] = None   # namespace -> max/mean range entities
    extra: dict = field(default_factory=dict)

    @property
    def eps(self) -> float:
        return self.entities / self.m.wall

    @property
    def cpu_per_1k(self) -> float:
        return self.m.cpu / self.entities * 1000


def _tail(path: str, n: int = 30) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _last_json(m: Measurement, name: str) -> dict:
    for line in reversed(m.stdout.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    raise BenchError(f"{name}: no result line on stdout (exit {m.returncode})\n{_tail(m.stderr_path)}")


def check_ok(m: Measurement, name: str) -> None:
    if m.returncode != 0:
        raise BenchError(f"{name}: exit code {m.returncode}\n--- stderr tail ---\n"
                         f"{_tail(m.stderr_path)}")


def check_counts(name: str, got_total: int, expected: dict[str, int],
                 got_ns: Optional[dict[str, int]] = None) -> None:
    want = sum(expected.values())
    if got_total != want:
        raise BenchError(f"{name}: read {got_total} entities, seeded {want}: COUNT MISMATCH")
    if got_ns is not None:
        bad = {ns: (got_ns.get(ns, 0), n) for ns, n in expected.items() if got_ns.get(ns, 0) != n}
        if bad:
            raise BenchError(f"{name}: per-namespace counts differ (read, seeded): {bad}")


def run_limit(ctx, label: str, pieces: int = 0) -> Run:
    """pieces=0: each namespace in `workers` wide ranges, one query each; pieces=N: up to N
    narrow ranges per namespace (what the emulator serves fastest, see bench/limit.py)."""
    cmd = [sys.executable, "-m", "bench.limit", "--project", PROJECT, "--kind", KIND,
           "--threads", str(ctx.workers), "--ranges", str(ctx.workers), "--pieces", str(pieces)]
    m = measure(cmd, ctx.env, ctx.log_dir, label, ctx.emu, ctx.sample_s)
    check_ok(m, label)
    res = _last_json(m, label)
    check_counts(label, res["entities"], ctx.expected, res["namespaces"])
    return Run("limit", res["entities"], m,
               extra={k: res[k] for k in ("queries", "plan_seconds", "read_seconds")})


def run_peer(ctx, label: str, text: bool = False) -> Run:
    """``text``: the peer also writes every entity as a JSON line (``WriteToText``), checked
    line by line afterwards (not timed)."""
    out_dir = Path(tempfile.mkdtemp(prefix="bench-peer-", dir=ctx.log_dir)) if text else None
    cmd = [sys.executable, "-m", "bench.peer", "--project", PROJECT, "--kind", KIND,
           "--namespaces", json.dumps(sorted(ctx.expected)), *ctx.runner]
    if out_dir is not None:
        cmd += ["--text", str(out_dir)]
    try:
        m = measure(cmd, ctx.env, ctx.log_dir, label, ctx.emu, ctx.sample_s)
        check_ok(m, label)
        res = _last_json(m, label)
        check_counts(label, res["entities"], ctx.expected)
        if out_dir is not None:
            lines = sum(1 for f in out_dir.glob("part*.jsonl")
                        for _ in f.open(encoding="utf-8"))
            if lines != res["entities"]:
                raise BenchError(f"{label}: {lines} lines written for {res['entities']} entities")
    finally:
        if out_dir is not None:
            shutil.rmtree(out_dir, ignore_errors=True)
    return Run("peer-text" if text else "peer", res["entities"], m)


def balance_of(summary: dict) -> dict[str, float]:
    out = {}
    for ns, t in summary["namespaces"].items():
        per_range = list(t.get("range_entities", {}).values())
        if per_range and sum(per_range):
            out[ns] = max(per_range) / (sum(per_range) / len(per_range))
    return out


def run_ours(ctx, label: str, job: str, output: bool = True, params: str = "") -> Run:
    """``output``: with --output DIR (the summary, manifests and the job's files there); without,
    the summary goes to the user's cache (here a temporary XDG_CACHE_HOME), as a plain run's.
    ``params``: more of the job's --params. ``ctx.tree``: run the code of that checkout."""
    out_dir = Path(tempfile.mkdtemp(prefix="bench-ours-", dir=ctx.log_dir))
    cmd = [sys.executable, "-m", "pipeline", "--job", job, "--project", ctx.project,
           "--params", f"kind={KIND}" + (f",{params}" if params else ""),
           *ctx.runner] + (["--output", str(out_dir)] if output else [])
    env = ctx.env if output else {**ctx.env, "XDG_CACHE_HOME": str(out_dir)}
    try:
        m = measure(cmd, env, ctx.log_dir, label, ctx.emu, ctx.sample_s, cwd=ctx.tree)
        check_ok(m, label)
        if output and job in ("export_keys", "export_entities", "backup_entities"):
            # the records: one line per entity, none twice
            lines = [ln for f in sorted(out_dir.glob(f"{job}/namespaces/*.jsonl"))
                     for ln in f.read_text(encoding="utf-8").splitlines()]
            if len(lines) != sum(ctx.expected.values()) or len(set(lines)) != len(lines):
                raise BenchError(f"{label}: {len(lines)} records ({len(set(lines))} distinct), "
                                 f"expected {sum(ctx.expected.values())}")
        found = (sorted(out_dir.glob(f"{job}/summary.json")) if output
                 else sorted(out_dir.glob("datastore-mapper/runs/*/summary.json")))
        if len(found) != 1:
            raise BenchError(f"{label}: {len(found)} summary files under {out_dir}\n"
                             f"{_tail(m.stderr_path)}")
        summary = json.loads(found[0].read_text())
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    got_ns = {("" if ns == "__default__" else ns): t["entities"]
              for ns, t in summary["namespaces"].items()}
    check_counts(label, summary["totals"]["entities"], ctx.expected, got_ns)
    t = summary["totals"]
    return Run(f"ours-{job}", t["entities"], m, balance=balance_of(summary),
               extra={"ranges": t["ranges"], "slices": t["slices"], "queries": t["queries"],
                      "retries": t["retries"], "workers": t["workers"],
                      "read_seconds": t["read_seconds"], "summary_seconds": summary["seconds"]})


def run_cli(ctx, label: str, args: list, code: int) -> Run:
    """The CLI with ``args`` (start-up: --help, a refusal, a tiny run), its exit code checked."""
    cmd = [sys.executable, "-m", "pipeline", *args]
    m = measure(cmd, ctx.env, ctx.log_dir, label, ctx.emu, ctx.sample_s)
    if m.returncode != code:
        raise BenchError(f"{label}: exit code {m.returncode}, expected {code}\n"
                         f"{_tail(m.stderr_path)}")
    return Run("cli", 0, m)


# ---------------------------------------------------------------- dataset, machine

def _describe_tree(tree: Path) -> str:
    """A checkout as ``DIR (commit)``, for the report."""
    try:
        head = subprocess.run(["git", "-C", str(tree), "log", "-1", "--format=%h %s"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = "?"
    return f"{tree} ({head[:80]})"


def label(ns: str) -> str:
    return ns or "__default__"


def dataset(total: int) -> list[NamespaceSpec]:
    sizes = [round(total * share) for _, share in NAMESPACE_SHARES[:-1]]
    sizes.append(max(1, total - sum(sizes)))
    return [NamespaceSpec(ns, n) for (ns, _), n in zip(NAMESPACE_SHARES, sizes)]


def seed(emu: DatastoreEmulator, total: int) -> tuple[dict[str, int], float]:
    spec = dataset(total)
    started = time.monotonic()
    written = seed_dataset(PROJECT, spec, kind=KIND)
    seconds = time.monotonic() - started
    expected = {ns: len(keys) for ns, keys in written.items()}
    n = sum(expected.values())
    print(f"seeded {n} {KIND} entities ("
          + ", ".join(f"{label(ns)} {c}" for ns, c in expected.items())
          + f") in {seconds:.1f} s ({n / seconds:.0f} entities/s)", flush=True)
    return expected, seconds


def machine() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def version(pkg):
        try:
            return importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            return None

    java = ""
    try:
        r = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=20)
        java = (r.stderr or r.stdout).splitlines()[0]
    except (OSError, subprocess.TimeoutExpired, IndexError):
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(), "cpu_model": model,
        "memory_mb": psutil.virtual_memory().total // MB, "platform": platform.platform(),
        "python": platform.python_version(), "apache_beam": version("apache-beam"),
        "google_cloud_datastore": version("google-cloud-datastore"), "psutil": version("psutil"),
        "java": java,
    }


# ---------------------------------------------------------------- report

@dataclass
class Ctx:
    emu: DatastoreEmulator
    env: dict
    expected: dict
    log_dir: Path
    workers: int
    sample_s: float
    project: str = PROJECT
    runner: list = field(default_factory=list)  # the runner's options, for peer and ours
    tree: Optional[Path] = None  # ours from another checkout (--ab-tree); None: this one


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def row_stats(runs: list[Run]) -> dict:
    out = {
        "runs": len(runs), "entities": runs[0].entities,
        "entities_per_s": stats([r.eps for r in runs]),
        "wall_s": stats([r.m.wall for r in runs]),
        "cpu_s": stats([r.m.cpu for r in runs]),
        "cpu_s_per_1k": stats([r.cpu_per_1k for r in runs]),
        "cpu_cores": stats([r.m.cpu / r.m.wall for r in runs]),
        "emulator_cpu_s_per_1k": stats([r.m.emulator_cpu / r.entities * 1000 for r in runs]),
        "peak_rss_mb": stats([r.m.peak_rss / MB for r in runs]),
        "peak_single_rss_mb": stats([r.m.peak_single_rss / MB for r in runs]),
        "processes": stats([r.m.processes for r in runs]),
        "other_cores": stats([r.m.other_cpu / r.m.wall for r in runs]),
    }
    if runs[0].balance is not None:
        per_ns = {}
        for ns in runs[0].balance:
            per_ns[ns] = stats([r.balance.get(ns, 1.0) for r in runs])
        out["balance"] = {"per_namespace": per_ns,
                          "worst": max(max(r.balance.values(), default=1.0) for r in runs)}
    return out


ROWS = (("limit-2r", "limit  bare client, 2 wide ranges/ns"),
        ("limit-narrow", "limit  bare client, {pieces} narrow/ns"),
        ("peer", "peer   ReadFromDatastore, entities"),
        ("ours-count_by_property", "ours   count_by_property, --output"),
        ("ours-count_keys", "ours   count_keys, keys, --output"),
        ("ours-count_by_property-noout", "ours   count_by_property, no output"),
        ("ours-count_keys-noout", "ours   count_keys, keys, no output"),
        ("ours-export_keys", "ours   export_keys full, records, --output"),
        ("peer-text", "peer   ReadFromDatastore -> JSON -> WriteToText"),
        ("ours-export_entities", "ours   export_entities, --output"),
        ("ours-backup_entities", "ours   backup_entities, --output"),
        ("ours-export_entities-B", "ours B export_entities, --output"),
        ("ours-backup_entities-B", "ours B backup_entities, --output"),
        ("ours-count_by_property-B", "ours B count_by_property, --output"),
        ("ours-export_keys-B", "ours B export_keys full, records, --output"),
        ("peer-2p", "peer   ReadFromDatastore, 2 processes"),
        ("ours-count_by_property-2p", "ours   count_by_property, --output, 2 pr."),
        ("ours-count_keys-noout-2p", "ours   count_keys, no output, 2 pr."))
OURS = [k for k, _ in ROWS if k.startswith("ours") and not k.endswith(("-2p", "-B"))]
X3 = "@3x"
STARTUP = (("startup-run", "a run over {tiny} entities (count_keys)"),
           ("startup-help", "--help"),
           ("startup-list_jobs", "--list_jobs"),
           ("startup-refused", "a refused input (unknown job)"))


def best_limit(rows: dict, suffix: str = "") -> tuple[Optional[str], Optional[float]]:
    """The faster of the bare-client rows of one size (by median entities/s): the ceiling."""
    cands = [(k, r["entities_per_s"]["median"]) for k, r in rows.items()
             if k.startswith("limit") and k.endswith(suffix) and (suffix or X3 not in k)]
    return max(cands, key=lambda kv: kv[1]) if cands else (None, None)


def table(report: dict) -> str:
    rows = report["rows"]
    head = (f"{'run':<42} {'entities':>8} {'entities/s med [min-max]':>25} {'wall s':>7} "
            f"{'CPU s/1k':>8} {'cores':>5} {'emu CPU/1k':>10} {'peak RSS MB':>11} "
            f"{'balance':>7} {'/peer':>6} {'/limit':>6}")
    lines = [head, "-" * len(head)]
    for suffix in ("", X3):
        peer = rows.get("peer" + suffix, {}).get("entities_per_s", {}).get("median")
        limit = best_limit(rows, suffix)[1]
        for key, label in ROWS:
            r = rows.get(key + suffix)
            if not r:
                continue
            e = r["entities_per_s"]
            eps = f"{e['median']:.0f} [{e['min']:.0f}-{e['max']:.0f}]"
            bal = f"{r['balance']['worst']:.2f}" if "balance" in r else "-"
            ours = key.startswith("ours")
            vs_peer = f"{e['median'] / peer:.2f}" if ours and peer else "-"
            vs_limit = f"{e['median'] / limit:.2f}" if ours and limit else "-"
            rss = r["peak_rss_mb"]
            label = label.format(pieces=report.get("limit_pieces")) + (" @3x" if suffix else "")
            lines.append(
                f"{label:<42} {r['entities']:>8} {eps:>25} {r['wall_s']['median']:>7.1f} "
                f"{r['cpu_s_per_1k']['median']:>8.2f} {r['cpu_cores']['median']:>5.2f} "
                f"{r['emulator_cpu_s_per_1k']['median']:>10.2f} "
                f"{rss['median']:>5.0f} [{rss['max']:>3.0f}] {bal:>7} {vs_peer:>6} {vs_limit:>6}")
    lines.append("")
    lines.append("entities/s = entities / wall time of the whole process (launch to exit); CPU s/1k = "
                 "CPU seconds of the process tree per 1,000 entities; cores = CPU s / wall s; "
                 "emu CPU/1k = the emulator's CPU per 1,000 entities; peak RSS = max over time of the "
                 "tree's summed RSS, median [max]; balance = worst (largest range / mean range of its "
                 "namespace); /peer, /limit = ratio of median entities/s to the same size's peer and "
                 "faster bare-client row. Medians of "
                 f"{report['repeats']} runs (the 3x rows: {report.get('repeats_3x', 1)}). Limit: 2 "
                 "threads, full entities; peer and ours: the CLI's local runner "
                 f"({' '.join(report.get('runner_args') or [])}).")
    start = report.get("startup", {})
    if start:
        lines.append("")
        lines.append("start-up (whole process, launch to exit, median of "
                     f"{report['repeats']}; peak RSS):")
        for key, label in STARTUP:
            r = start.get(key)
            if r:
                lines.append(f"  {label.format(tiny=report.get('tiny')):<42} "
                             f"{r['wall_s']['median']:>5.2f} s  {r['peak_rss_mb']['median']:>4.0f} MB")
    noisy = {k: r["other_cores"]["max"] for k, r in rows.items() if r["other_cores"]["max"] > 0.15}
    lines.append("machine otherwise idle during every run (other processes < 0.15 cores)" if not noisy
                 else "WARNING: other processes were busy during some runs (max cores used by them: "
                 + ", ".join(f"{k} {v:.2f}" for k, v in noisy.items()) + "): numbers are noisy")
    for key in OURS:
        for suffix in ("", X3):
            r = rows.get(key + suffix)
            if r and "balance" in r:
                per = ", ".join(f"{ns} {st['median']:.2f}" + (f" (max {st['max']:.2f})" if st["max"] != st["median"] else "")
                                for ns, st in r["balance"]["per_namespace"].items())
                lines.append(f"balance {key}{suffix}: {per}")
    for key in ("limit-narrow", "peer", "ours-count_by_property", "ours-count_by_property-noout"):
        procs = report.get("processes", {}).get(key)
        if procs:
            lines.append(f"processes {key} (repeat 1): " + "; ".join(
                f"{p['cmd']} {p['peak_rss_mb']:.0f} MB {p['cpu_s']:.1f} s CPU" for p in procs))
    return "\n".join(lines)


def targets(report: dict) -> str:
    rows = report["rows"]
    out = []

    def line(ok, text):
        out.append(f"  [{'met' if ok else 'MISSED'}] {text}")

    def eps(key):
        return rows[key]["entities_per_s"]["median"]

    for suffix, size in (("", "1x"), (X3, "3x")):
        limit_key, limit = best_limit(rows, suffix)
        peer_key = "peer" + suffix
        for key in OURS:
            k = key + suffix
            if k not in rows:
                continue
            if limit:
                r = eps(k) / limit
                line(r >= 0.9, f"{size} {key}: ours/limit >= 0.9: {r:.2f} (vs {limit_key})")
            if not suffix and peer_key in rows:
                r = eps(k) / eps(peer_key)
                line(r >= 1.25, f"{size} {key}: ours/peer >= 1.25: {r:.2f}")
        full, peer = rows.get("ours-count_by_property" + suffix), rows.get(peer_key)
        if full and peer:
            a, b = full["cpu_s_per_1k"]["median"], peer["cpu_s_per_1k"]["median"]
            line(a <= 0.6 * b, f"{size} CPU s per 1,000 entities <= 0.6x the peer's: {a:.2f} "
                 f"vs {b:.2f} ({a / b:.2f}x)")
        text = rows.get("peer-text" + suffix)
        for job in ("export_entities", "backup_entities", "export_keys"):
            mine = rows.get(f"ours-{job}" + suffix)
            if text and mine:
                a, b = mine["cpu_s_per_1k"]["median"], text["cpu_s_per_1k"]["median"]
                line(a <= 0.75 * b, f"{size} {job}: CPU s per 1,000 entities <= 0.75x the "
                     f"peer's read + JSON + WriteToText: {a:.2f} vs {b:.2f} ({a / b:.2f}x)")
        for key in sorted(k for k in rows if k.endswith("-B" + suffix)):
            a_row = rows.get(key[:-len("-B" + suffix)] + suffix)
            if a_row:
                b_row = rows[key]
                out.append(f"  [A/B] {key[:-len('-B' + suffix)]}{suffix}: CPU "
                           f"{a_row['cpu_s']['median']:.2f} / {b_row['cpu_s']['median']:.2f} s = "
                           f"{a_row['cpu_s']['median'] / b_row['cpu_s']['median']:.2f}; wall "
                           f"{a_row['wall_s']['median']:.2f} / {b_row['wall_s']['median']:.2f} s "
                           f"= {a_row['wall_s']['median'] / b_row['wall_s']['median']:.2f}")
        if full:
            rss = full["peak_rss_mb"]["median"]
            line(rss < 400, f"{size} peak RSS (process tree, summed) < 400 MB: {rss:.0f} MB")
    if "rss_ratio_3x" in report:
        r = report["rss_ratio_3x"]
        line(r < 1.15, f"peak RSS at 3x < 15 % above 1x: {(r - 1) * 100:+.0f} %")
    start = report.get("startup", {})
    if "startup-run" in start:
        w = start["startup-run"]["wall_s"]["median"]
        line(w <= 4.0, f"a run over {report.get('tiny')} entities <= 4 s: {w:.2f} s")
    quick = [(k, start[k]["wall_s"]["median"]) for k, _ in STARTUP[1:] if k in start]
    if quick:
        worst = max(quick, key=lambda kv: kv[1])
        line(worst[1] <= 1.5, "--help, --list_jobs, a refusal <= 1.5 s: "
             + ", ".join(f"{k.split('-', 1)[1]} {v:.2f} s" for k, v in quick))
    worst = max((rows[k]["balance"]["worst"] for k in rows if "balance" in rows[k]), default=None)
    if worst is not None:
        line(worst <= 1.5, f"balance: no range above 1.5x its namespace's mean: worst {worst:.2f}")
    return "targets (issues 15 and 25):\n" + "\n".join(out)


def print_machine(m: dict) -> None:
    print(f"machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_mb'] / 1024:.1f} GB RAM, "
          f"{m['platform']}; Python {m['python']}, apache-beam {m['apache_beam']}, "
          f"google-cloud-datastore {m['google_cloud_datastore']}, {m['java']}", flush=True)


# ---------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--entities", type=int, default=30000, help="dataset size (default 30000)")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each contender (default 3)")
    ap.add_argument("--repeats-3x", type=int, default=1,
                    help="runs of each contender at 3x the size (default 1)")
    ap.add_argument("--skip-3x", action="store_true", help="skip the rows at 3x the size")
    ap.add_argument("--warmup", type=int, default=1,
                    help="unmeasured bare-client reads first, to warm up the emulator's JVM (default 1)")
    ap.add_argument("--json", help="write the results as JSON to this file")
    ap.add_argument("--only", default="limit,peer,full,keys,noout,export,exports",
                    help="comma-separated subset of limit,peer,full,keys,noout,export,exports "
                         "(default all; noout: ours also without --output; export: ours writing "
                         "every entity as a record, export_keys full=true; exports: "
                         "export_entities and backup_entities, and the peer writing JSON lines "
                         "with WriteToText)")
    ap.add_argument("--ab-tree", metavar="DIR",
                    help="also run ours (full; and export, if selected) from the checkout DIR "
                         "(rows 'ours B'), interleaved with this one's: a before/after in one run")
    ap.add_argument("--tiny", type=int, default=100,
                    help="entities of the start-up run (default 100; 0 skips the start-up rows)")
    ap.add_argument("--limit-pieces", type=int, default=16,
                    help="narrow key ranges per namespace of the second bare-client row "
                         "(default 16; 0 drops that row)")
    ap.add_argument("--sample-ms", type=float, default=50.0, help="RSS sampling period (default 50)")
    ap.add_argument("--keep-logs", action="store_true", help="keep the runs' stdout/stderr files")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    workers = 2  # the bare client's threads: two streams saturate the emulator on 2 cores

    def on_term(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored

    subreaper = set_subreaper()
    info = machine()
    print_machine(info)
    if not subreaper:
        print("warning: could not become a child subreaper; CPU of orphaned processes may be "
              "missed", flush=True)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    report: dict = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "machine": info, "entities": args.entities, "repeats": args.repeats,
                    "workers": workers, "limit_pieces": args.limit_pieces, "runner_args": None, "rows": {}, "runs": []}
    from pipeline.launch.options import LOCAL_ARGS
    runner_args = LOCAL_ARGS
    report["runner_args"] = runner_args
    emu = DatastoreEmulator(project=PROJECT)
    failed = True
    try:
        started = time.monotonic()
        emu.start()
        print(f"emulator on {emu.host} (ready in {time.monotonic() - started:.1f} s); "
              f"logs of the runs in {log_dir}", flush=True)
        os.environ.update(emu.env())
        env = {**os.environ, **emu.env(), "PYTHONUNBUFFERED": "1"}
        expected, seed_s = seed(emu, args.entities)
        report["seeding"] = {"entities": sum(expected.values()), "seconds": round(seed_s, 2),
                             "namespaces": expected}
        ctx = Ctx(emu, env, expected, log_dir, workers, args.sample_ms / 1000,
                  runner=list(runner_args))

        for i in range(args.warmup):
            r = run_limit(ctx, f"warmup-{i + 1}")
            print(f"[warm-up {i + 1}] bare client read {r.entities} entities in {r.m.wall:.1f} s "
                  "(not counted)", flush=True)

        def contenders_for(suffix: str) -> list:
            out: list[tuple[str, str, Callable[[Ctx, str], Run]]] = []
            if "limit" in only:
                if not suffix:
                    out.append(("limit-2r", "limit-2r", run_limit))
                if args.limit_pieces:
                    out.append(("limit-narrow", f"limit-{args.limit_pieces}p",
                                lambda c, lb: run_limit(c, lb, args.limit_pieces)))
            if "peer" in only:
                out.append(("peer", "peer", run_peer))
            for what, job in (("full", "count_by_property"), ("keys", "count_keys")):
                if what not in only:
                    continue
                out.append((f"ours-{job}", f"ours-{what}",
                            lambda c, lb, job=job: run_ours(c, lb, job)))
                if "noout" in only:
                    out.append((f"ours-{job}-noout", f"ours-{what}-noout",
                                lambda c, lb, job=job: run_ours(c, lb, job, output=False)))
            if "export" in only:
                out.append(("ours-export_keys", "ours-export",
                            lambda c, lb: run_ours(c, lb, "export_keys", params="full=true")))
            if "exports" in only:  # the export jobs, and the peer writing text files
                out.append(("peer-text", "peer-text", lambda c, lb: run_peer(c, lb, text=True)))
                for job in ("export_entities", "backup_entities"):
                    out.append((f"ours-{job}", f"ours-{job}",
                                lambda c, lb, job=job: run_ours(c, lb, job)))
            if args.ab_tree and not suffix:  # the same rows from another checkout
                if "full" in only:
                    out.append(("ours-count_by_property-B", "ours-full-B",
                                lambda c, lb: run_ours(cb, lb, "count_by_property")))
                if "exports" in only:
                    for job in ("export_entities", "backup_entities"):
                        out.append((f"ours-{job}-B", f"ours-{job}-B",
                                    lambda c, lb, job=job: run_ours(cb, lb, job)))
                if "export" in only:
                    out.append(("ours-export_keys-B", "ours-export-B",
                                lambda c, lb: run_ours(cb, lb, "export_keys",
                                                       params="full=true")))
            return [(key + suffix, short + suffix, fn) for key, short, fn in out]

        def measure_rows(ctx_: Ctx, contenders: list, repeats: int) -> None:
            results: dict[str, list[Run]] = {k: [] for k, _, _ in contenders}
            for rep in range(repeats):  # interleaved, so drift hits every contender alike
                for key, short, fn in contenders:
                    r = fn(ctx_, f"{short}-{rep + 1}")
                    results[key].append(r)
                    report.setdefault("processes", {}).setdefault(key, r.m.per_process)
                    report["runs"].append({"row": key, "repeat": rep + 1, "entities": r.entities,
                                           "measurement": {k: v for k, v in asdict(r.m).items()
                                                           if k != "stdout"},
                                           "balance": r.balance, **r.extra})
                    bal = (f", balance worst {max(r.balance.values()):.2f}" if r.balance else "")
                    print(f"[{key} {rep + 1}/{repeats}] {r.entities} entities in {r.m.wall:.1f} s "
                          f"({r.eps:.0f}/s), CPU {r.m.cpu:.1f} s (sampled {r.m.cpu_sampled:.1f}), "
                          f"emulator CPU {r.m.emulator_cpu:.1f} s, other CPU {r.m.other_cpu:.1f} s, "
                          f"peak RSS {r.m.peak_rss / MB:.0f} MB in {r.m.processes} processes{bal}",
                          flush=True)
            for key, runs in results.items():
                report["rows"][key] = row_stats(runs)

        cb = dataclasses.replace(ctx, tree=Path(args.ab_tree).resolve() if args.ab_tree else None)
        report["ab_tree"] = args.ab_tree and _describe_tree(Path(args.ab_tree))
        measure_rows(ctx, contenders_for(""), args.repeats)

        if args.tiny:  # start-up: a run over a tiny data set, --help, --list_jobs, a refusal
            tiny_project = "bench-tiny"
            seed_dataset(tiny_project, [NamespaceSpec("", args.tiny)], kind=KIND)
            tctx = Ctx(emu, env, {"": args.tiny}, log_dir, workers, args.sample_ms / 1000,
                       project=tiny_project, runner=list(runner_args))
            cases = (("startup-run", ["--job", "count_keys", "--project", tiny_project,
                                      "--params", f"kind={KIND}", *tctx.runner], 0),
                     ("startup-help", ["--help"], 0),
                     ("startup-list_jobs", ["--list_jobs"], 0),
                     ("startup-refused", ["--job", "no_such_job", "--project", tiny_project], 2))
            runs: dict = {k: [] for k, _, _ in cases}
            for rep in range(args.repeats):
                for key, cli_args, code in cases:
                    r = run_cli(tctx, f"{key}-{rep + 1}", cli_args, code)
                    runs[key].append(r)
                    print(f"[{key} {rep + 1}/{args.repeats}] {r.m.wall:.2f} s, peak RSS "
                          f"{r.m.peak_rss / MB:.0f} MB", flush=True)
            report["tiny"] = args.tiny
            report["startup"] = {k: {"wall_s": stats([r.m.wall for r in v]),
                                     "cpu_s": stats([r.m.cpu for r in v]),
                                     "peak_rss_mb": stats([r.m.peak_rss / MB for r in v])}
                                 for k, v in runs.items()}

        if not args.skip_3x:
            emu.reset()
            expected3, seed3_s = seed(emu, 3 * args.entities)
            report["seeding_3x"] = {"entities": sum(expected3.values()), "seconds": round(seed3_s, 2),
                                    "namespaces": expected3}
            ctx3 = Ctx(emu, env, expected3, log_dir, workers, args.sample_ms / 1000,
                       runner=list(runner_args))
            report["repeats_3x"] = args.repeats_3x
            measure_rows(ctx3, contenders_for(X3), args.repeats_3x)
            full, full3 = "ours-count_by_property", "ours-count_by_property" + X3
            if full in report["rows"] and full3 in report["rows"]:
                report["rss_ratio_3x"] = (report["rows"][full3]["peak_rss_mb"]["median"]
                                          / report["rows"][full]["peak_rss_mb"]["median"])

        print()
        print_machine(info)
        print(f"dataset: {report['seeding']['entities']} entities of kind {KIND} in "
              f"{len(expected)} namespaces "
              f"({', '.join(f'{label(ns)} {n}' for ns, n in expected.items())}), "
              f"seeded in {seed_s:.1f} s; runner {' '.join(runner_args)}")
        print(table(report))
        print(targets(report), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
            print(f"results written to {args.json}")
        failed = False
        return 0
    except BenchError as e:
        print(f"bench failed: {e}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr, flush=True)
        return 130
    finally:
        emu.stop()
        if failed or args.keep_logs:
            print(f"run logs kept in {log_dir}", file=sys.stderr)
        else:
            shutil.rmtree(log_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
