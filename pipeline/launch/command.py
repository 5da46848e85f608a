"""``datastore-mapper``: the console script (``setup.py``'s entry point).

- ``datastore-mapper [OPTIONS]`` runs a job, exactly as ``python -m pipeline [OPTIONS]``;
- ``datastore-mapper emulator [start] [--data_dir DIR | --in_memory] [--port N]`` starts a
  local Cloud Datastore emulator for one's own data and prints what to export
  (``devtools.emulator``); ``datastore-mapper emulator check`` says whether it is installed;
- ``datastore-mapper bigquery-emulator [start] [--port N] [--project P] [--data_dir DIR]`` starts
  a local BigQuery emulator, offline, and prints what to export (``devtools.bq_emulator``);
  ``datastore-mapper bigquery-emulator check`` says whether it can start here;
- ``datastore-mapper seed [--small]`` writes the demo data set into the emulator
  ``DATASTORE_EMULATOR_HOST`` points at (``devtools.seed``);
- ``datastore-mapper demo [OPTIONS]`` is ``run_demo.sh`` without the installation
  (``devtools.demo``).

Nothing is imported before it is needed: the tools load neither Beam nor the pipeline.
"""
from __future__ import annotations

import importlib
import sys
from typing import Optional, Sequence

PROG = "datastore-mapper"
#: Subcommand -> (module, what it does).
TOOLS = {
    "emulator": ("devtools.emulator", "start a local Datastore emulator for your own data"),
    "bigquery-emulator": ("devtools.bq_emulator", "start a local BigQuery emulator (offline)"),
    "seed": ("devtools.seed", "write the demo data set into the emulator"),
    "demo": ("devtools.demo", "emulator + demo data + one run, then everything stopped"),
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in TOOLS:
        name, rest = argv[0], argv[1:]
        module = importlib.import_module(TOOLS[name][0])
        if name in ("emulator", "bigquery-emulator"):
            if not rest or rest[0].startswith("-") and rest[0] not in ("-h", "--help"):
                rest = ["start", *rest]  # `datastore-mapper emulator` starts one
            return module._main(rest, prog=f"{PROG} {name}")
        if name == "seed":
            return module.main(rest, prog=f"{PROG} seed")
        return module.main(rest)
    from pipeline.launch.cli import main as run

    return run(argv, prog=PROG)


if __name__ == "__main__":
    sys.exit(main())
