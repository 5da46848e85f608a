"""End-to-end demo: emulator + DEMO_DATASET + one pipeline run, with nothing left running after.

Usage: python -m devtools.demo [extra pipeline args, e.g. --job count_by_category]
The output goes to --output if given, else $DEMO_OUTPUT, else to a fresh temporary directory,
kept for inspection when the run wrote something into it (and named at the end), removed when it
stayed empty or the demo was interrupted. Nothing else is left behind, also when a step fails or
the demo is interrupted (Ctrl-C, SIGTERM, SIGHUP): the emulators are stopped, and their temporary
directories removed, before it exits.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from devtools.bq_emulator import BigQueryEmulatorProcess, BigQueryEmulatorUnavailable
from devtools.emulator import DatastoreEmulator, EmulatorUnavailable
from devtools.seed import DEMO_DATASET, seed_dataset

PROJECT = "demo"
STOP_GRACE = 30.0  # seconds an interrupted pipeline gets to stop its workers and clean up


def _has_flag(argv: list[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(flag + "=") for arg in argv)


def _flag_value(argv: list[str], flag: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg.startswith(flag + "="):
            return arg.split("=", 1)[1]
        if arg == flag and i + 1 < len(argv):
            return argv[i + 1]
    return None


def pipeline_command(argv: list[str], output: str) -> list[str]:
    """`python -m pipeline ...` with demo defaults; flags given in argv win over the defaults."""
    defaults = {"--job": "count_keys", "--project": PROJECT, "--output": output}
    cmd = [sys.executable, "-m", "pipeline"]
    for flag, value in defaults.items():
        if not _has_flag(argv, flag):
            cmd += [flag, value]
    return cmd + argv


DEMO_TABLE = "demo:demo.items_{namespace}"


def wants_bigquery(argv: list[str]) -> bool:
    """stream_entities (or --bigquery_table) without a BigQuery of the user's: start bqemulator."""
    streaming = _flag_value(argv, "--job") == "stream_entities" or _has_flag(argv, "--bigquery_table")
    return streaming and not _has_flag(argv, "--bigquery_emulator_host")


def bigquery_args(argv: list[str], host: str) -> list[str]:
    extra = ["--bigquery_emulator_host", host]
    if not _has_flag(argv, "--bigquery_table"):
        extra += ["--bigquery_table", DEMO_TABLE]
    return argv + extra


def print_tables(host: str, table: str) -> None:
    """Rows per table of the dataset the demo streamed into."""
    # Only the streaming demo needs the BigQuery client: keep it off the other demos' path.
    from pipeline.core.retry import RetryPolicy
    from pipeline.sinks.bigquery.service import client, retry
    from pipeline.sinks.bigquery.tables import parse_table

    spec = parse_table(table, PROJECT)
    c = client(PROJECT, host)
    r = retry(RetryPolicy(deadline=30))
    print(f"BigQuery dataset {spec.dataset_id} (in the emulator, gone when the demo ends):")
    for t in c.list_tables(spec.dataset_id, retry=r, timeout=10):
        # Counted by listing them: the emulator's table metadata (numRows) can lag behind.
        n = sum(1 for _ in c.list_rows(t, retry=r, timeout=10))
        print(f"  {t.table_id}: {n} rows")


class _Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, which reach the demo alone (a terminal's Ctrl-C reaches the whole
    process group, the pipeline too)."""


def _stopped(signum, frame) -> None:
    raise _Stopped


def _stop_pipeline(proc: subprocess.Popen[bytes], forward: bool) -> None:
    """Stop the pipeline as a Ctrl-C does (it then stops its workers and removes its run
    directory); terminated, then killed, only if it does not end."""
    if forward:
        proc.send_signal(signal.SIGINT)
    for wait, then in ((STOP_GRACE, proc.terminate), (10, proc.kill), (10, None)):
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            if then is not None:
                then()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    given_output = _flag_value(argv, "--output") or os.environ.get("DEMO_OUTPUT")
    own_output: str | None = None  # the temporary output directory made here
    emu = DatastoreEmulator(project=PROJECT)
    proc: subprocess.Popen[bytes] | None = None
    bq: BigQueryEmulatorProcess | None = None
    # SIGTERM and SIGHUP stop it as Ctrl-C does: without this they would end it before the
    # `finally` below, leaving the emulators running and their temp directories behind.
    previous = {signal.SIGINT: signal.getsignal(signal.SIGINT),
                **{sig: signal.signal(sig, _stopped) for sig in (signal.SIGTERM, signal.SIGHUP)}}
    try:
        started = time.monotonic()
        emu.start()
        print(f"emulator ready at {emu.host} in {time.monotonic() - started:.1f} s")
        os.environ.update(emu.env())  # seed_dataset's client and the pipeline both read these
        started = time.monotonic()
        written = seed_dataset(PROJECT, DEMO_DATASET)
        counts = ", ".join(f"{ns or '(default)'}={len(keys)}" for ns, keys in written.items())
        print(f"seeded {counts} in {time.monotonic() - started:.1f} s")
        if wants_bigquery(argv):
            bq = BigQueryEmulatorProcess(PROJECT)  # known before it starts: stopped if that fails
            bq.start()
            print(f"BigQuery emulator (bqemulator) ready at {bq.host}")
            argv = bigquery_args(argv, bq.host)
        output = given_output or (own_output := tempfile.mkdtemp(prefix="datastore-mapper-demo-"))
        cmd = pipeline_command(argv, output)
        print("running:", " ".join(cmd), flush=True)
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=os.environ.copy())
        code = proc.wait()
        print(f"pipeline exited with {code} after {time.monotonic() - started:.1f} s")
        if own_output is None or any(os.scandir(own_output)):
            own_output = None  # kept for inspection
            print(f"output: {output}")
        if bq is not None and code == 0:
            print_tables(bq.host, _flag_value(argv, "--bigquery_table") or "")
        return code
    except (EmulatorUnavailable, BigQueryEmulatorUnavailable, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as exc:
        print("interrupted: stopping", file=sys.stderr)
        if proc is not None and proc.poll() is None:  # gone before the emulators go
            _stop_pipeline(proc, forward=isinstance(exc, _Stopped))
        return 130
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        if bq is not None:
            bq.stop()
        emu.stop()
        if own_output is not None:
            shutil.rmtree(own_output, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
