"""End-to-end demo: emulator + DEMO_DATASET + one pipeline run, with nothing left running after.

Usage: python -m devtools.demo [extra pipeline args, e.g. --job count_by_category]
The output goes to --output if given, else $DEMO_OUTPUT, else to a fresh temporary directory that is kept for inspection.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from devtools.bq_emulator import BigQueryEmulatorProcess, BigQueryEmulatorUnavailable
from devtools.emulator import DatastoreEmulator, EmulatorUnavailable
from devtools.seed import DEMO_DATASET, seed_dataset

PROJECT = "demo"


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


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    output = (_flag_value(argv, "--output") or os.environ.get("DEMO_OUTPUT")
              or tempfile.mkdtemp(prefix="datastore-mapper-demo-"))
    emu = DatastoreEmulator(project=PROJECT)
    proc: subprocess.Popen[bytes] | None = None
    bq: BigQueryEmulatorProcess | None = None
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
            bq = BigQueryEmulatorProcess(PROJECT).start()
            print(f"BigQuery emulator (bqemulator) ready at {bq.host}")
            argv = bigquery_args(argv, bq.host)
        cmd = pipeline_command(argv, output)
        print("running:", " ".join(cmd), flush=True)
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=os.environ.copy())
        code = proc.wait()
        print(f"pipeline exited with {code} after {time.monotonic() - started:.1f} s")
        print(f"output: {output}")
        if bq is not None and code == 0:
            print_tables(bq.host, _flag_value(argv, "--bigquery_table") or "")
        return code
    except (EmulatorUnavailable, BigQueryEmulatorUnavailable) as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: stopping", file=sys.stderr)
        if proc is not None and proc.poll() is None:
            proc.terminate()  # it got SIGINT too; make sure it is gone before the emulator goes
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        return 130
    finally:
        if bq is not None:
            bq.stop()
        emu.stop()


if __name__ == "__main__":
    sys.exit(main())
