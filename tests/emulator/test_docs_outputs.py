"""What the README and the docs show, run on the emulator: nothing shown goes stale silently.

- A block marked ``<!-- checked: NAME -->`` (a fenced ``text`` block) is what a real run
  prints; the test that makes that run compares it with the block. Times and rates
  (``10.4 s (498 entities/s)``), the read time of ``--read_time=start``, the temporary
  directory the commands ran in (shown as ``/home/me``), run ids (``runs/RUN``) and the
  program named in printed follow-up commands (``python -m pipeline`` or ``datastore-mapper``)
  are normalised; everything else must match.
- A block marked ``<!-- walked: NAME -->`` (a fenced ``bash`` block) is run command by command,
  in order, in one directory, as a user types it (``datastore-mapper ...`` in this process,
  through the console script's ``main``); ``UNDO`` is the undo log the previous run printed.
- The README's own ``bash`` blocks are walked the same way, with a project's names mapped onto
  the emulator (``--project P`` dropped, ``gs://b/`` a local directory, ``tenant-42`` the demo's
  ``globex``, ``kind=Order`` the demo's ``kind=Item``); a command that needs what no test has
  (a venv, the suite itself, gcloud, bq) is named in ``README_NOT_RUN`` with the reason, and any
  other command must run.

``UPDATE_DOCS=1 pytest tests/emulator/test_docs_outputs.py`` rewrites the checked blocks from
the real runs (then review the diff)."""
from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from google.cloud import datastore

from tests.support import TEST_PROJECT

ROOT = Path(__file__).resolve().parents[2]
HOME = "/home/me"
UPDATE = os.environ.get("UPDATE_DOCS") == "1"

CHECKED = r"<!-- checked: {name} -->\n```text\n(.*?)```"
WALKED = re.compile(r"<!-- walked: ([\w-]+) -->\n```bash\n(.*?)```", re.S)


def _pages() -> list:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def normalise(text: str) -> str:
    text = re.sub(r"\d+(\.\d+)? s \(\d+ entities/s\)", "T s (R entities/s)", text)
    text = re.sub(r"runs/[0-9a-f]{12}\b", "runs/RUN", text)
    text = re.sub(r"^read time: \S+", "read time: TIME", text, flags=re.M)
    text = re.sub(r"python -m pipeline|datastore-mapper", "CMD", text)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def check(name: str, actual: str) -> None:
    """Every block marked ``checked: name`` shows ``actual`` (normalised)."""
    pattern = re.compile(CHECKED.format(name=re.escape(name)), re.S)
    found = 0
    for page in _pages():
        text = page.read_text(encoding="utf-8")
        blocks = pattern.findall(text)
        found += len(blocks)
        if UPDATE and blocks:
            text = pattern.sub(lambda m: m.group(0)[:m.start(1) - m.start(0)]
                               + actual.strip() + "\n```", text)
            page.write_text(text, encoding="utf-8")
            continue
        for block in blocks:
            assert normalise(block) == normalise(actual), (
                f"{page.relative_to(ROOT)}, block {name!r}, is not what the run prints:\n"
                f"--- shown\n{block}\n--- printed\n{actual}")
    assert found, f"no block marked 'checked: {name}'"


def summary_block(stdout: str) -> str:
    """The printed summary: from ``job ...:`` to ``total counters: ...`` (or, without
    counters, to the line before ``summary PATH; report PATH``)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("job "))
    end = next((i for i, line in enumerate(lines) if line.startswith("total counters:")),
               None)
    if end is None:
        end = next(i for i, line in enumerate(lines) if line.startswith("summary ")) - 1
    return "\n".join(lines[start:end + 1])


def walked_block(name: str) -> str:
    for page in _pages():
        for found, body in WALKED.findall(page.read_text(encoding="utf-8")):
            if found == name:
                return body
    raise AssertionError(f"no block marked 'walked: {name}'")


def commands(block: str) -> list:
    """The block's commands, continuation lines joined, comments dropped."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        argv = shlex.split(line, comments=True)
        if argv:
            out.append(argv)
    return out


class Walk:
    """Commands run in one directory, as a user runs them; what each printed."""

    def __init__(self, cwd: Path, monkeypatch):
        self.cwd, self.undo = cwd, None
        self.outputs: list = []
        monkeypatch.chdir(cwd)
        monkeypatch.syspath_prepend(str(cwd))  # PYTHONPATH=. (and python -m's own behaviour)

    def run(self, argv: list) -> str:
        from pipeline.launch.cli import console_main

        if argv and argv[0] == "PYTHONPATH=.":
            argv = argv[1:]
        assert argv[0] == "datastore-mapper", argv
        argv = [a.replace("from=UNDO", f"from={self.undo}") if self.undo else a
                for a in argv[1:]]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = console_main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
        stdout = out.getvalue().replace(str(self.cwd), HOME)
        assert code == 0, (argv, stdout[-2000:], err.getvalue()[-3000:])
        m = re.search(r"^undo log: (\S+)", out.getvalue(), re.M)
        if m:
            self.undo = m.group(1)
        self.outputs.append(stdout)
        return stdout


def entities(namespace: str | None) -> dict:
    """kind -> entities in the namespace (of the emulator the fixtures started)."""
    c = datastore.Client(project=TEST_PROJECT, namespace=namespace)
    kinds = [e.key.name for e in c.query(kind="__kind__").fetch()]
    return {k: len(list(c.query(kind=k).fetch())) for k in kinds if not k.startswith("__")}


# --- docs/getting-started.md, docs/migrate.md and docs/tenants.md: their walk-throughs -----

def test_the_getting_started_commands_run(emulator, tmp_path, monkeypatch):
    walk = Walk(tmp_path, monkeypatch)
    cmds = commands(walked_block("getting-started"))
    assert [c[:2] for c in cmds] == [["datastore-mapper", "seed"], ["datastore-mapper", "--job"]]
    for argv in cmds:
        walk.run(argv)
    assert "seeded 5165 entities" in walk.outputs[0]
    counted = summary_block(walk.outputs[1])
    assert "job count_by_property: 5165 entities in 5 namespaces" in counted
    assert re.search(r"^total counters: entities=5165, value:books=\d+, value:electronics=\d+",
                     counted, re.M), counted


def test_the_migrate_page_walk_through_prints_what_it_shows(emulator, tmp_path, monkeypatch):
    walk = Walk(tmp_path, monkeypatch)
    cmds = commands(walked_block("migrate"))
    assert [c[:3] for c in cmds[:1]] == [["datastore-mapper", "seed", "--small"]]
    for argv in cmds:
        walk.run(argv)
    seeded, dry, apply, again, restore = walk.outputs
    for name, printed in [("migrate-dry-run", dry), ("migrate-apply", apply),
                          ("migrate-again", again), ("migrate-restore", restore)]:
        check(name, printed)
    items = list(datastore.Client(project=TEST_PROJECT).query(kind="Item").fetch())
    assert items and all("category" in e and "section" not in e for e in items)  # undone


def test_the_tenants_page_walk_through_prints_what_it_shows(emulator, tmp_path, monkeypatch):
    walk = Walk(tmp_path, monkeypatch)
    cmds = commands(walked_block("tenants"))
    before = None
    for i, argv in enumerate(cmds):
        walk.run(argv)
        if i == 0:
            before = entities("globex")
        if i == 3:  # the erasure, for real
            assert entities("globex") == {}
            assert entities("acme")["Item"] == 3000  # only that tenant
    assert before == {"Item": 600, "Parent": 6}
    assert entities("globex") == before
    _, backup, erase_dry, erase, restore = walk.outputs
    check("tenants-backup", summary_block(backup))
    check("tenants-erase-dry-run", erase_dry)
    check("tenants-erase", erase)
    check("tenants-restore", restore)


# --- the README ---------------------------------------------------------------------------------

#: Commands of the README no test here runs as they are, and why.
README_NOT_RUN = {
    "./run_demo.sh": "the demo: its installer by tests/deploy/test_run_demo_script.py, what it "
                     "prints by the demo-summary block (the same seed and job)",
    "bash": "bash .ci/run is the test suite itself",
    "python3": "creating the venv the suite runs in",
    "source": "activating that venv",
    "export": "the fixtures export the emulator's variables",
    "gcloud": "needs a Google Cloud project",
    "bq": "needs a Google Cloud project",
}
#: A project's names, mapped onto the emulator and the demo data.
README_SUBSTITUTIONS = [("--project P ", ""), ("gs://b/", "b/"), ("tenant-42", "globex"),
                        ("kind=Order", "kind=Item")]


def page_commands(page: Path) -> list:
    """The commands of a page's ``bash`` blocks, with a project's names mapped onto the
    emulator and the demo data (``README_SUBSTITUTIONS``)."""
    text = page.read_text(encoding="utf-8")
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = block.replace("\\\n", " ")
        for a, b in README_SUBSTITUTIONS:
            joined = joined.replace(a, b)
        out += commands(joined)
    return out


def _readme_commands() -> list:
    return page_commands(ROOT / "README.md")


def test_the_readme_s_commands_run_in_order_and_print_what_it_shows(emulator, tmp_path,
                                                                     monkeypatch):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    (module,) = re.findall(r"```python\n(# myjobs\.py\n.*?)```", text, re.S)
    (tmp_path / "myjobs.py").write_text(module, encoding="utf-8")
    sys.modules.pop("myjobs", None)
    walk = Walk(tmp_path, monkeypatch)
    ran, skipped = [], []
    for argv in _readme_commands():
        if argv[0] in README_NOT_RUN or argv[:2] == ["datastore-mapper", "emulator"]:
            skipped.append(argv)
            continue
        if any(a.startswith("PROJECT=") for a in argv):  # run_dataflow.sh: its commands only
            env = dict(a.split("=", 1) for a in argv if re.match(r"[A-Z_]+=", a))
            script = next(a for a in argv if a.endswith("run_dataflow.sh"))
            proc = subprocess.run(["bash", str(ROOT / script)], cwd=ROOT, capture_output=True,
                                  text=True, timeout=60, env={**os.environ, **env, "DRY_RUN": "1"})
            assert proc.returncode == 0, proc.stderr
            assert "-m pipeline --runner=DataflowRunner --project=my-project" in proc.stdout
            assert "--job=count_by_property" in proc.stdout
            ran.append(argv)
            continue
        if "--bigquery_table" in argv:
            skipped.append(argv)  # needs BigQuery: the next test runs it on bqemulator
            continue
        printed = walk.run(argv)
        ran.append(argv)
        if argv[1:] == ["--job", "count_keys"]:
            check("demo-summary", summary_block(printed))
        if "top_items" in argv:
            check("worked-job", summary_block(printed))
            records = (tmp_path / "out" / "top_items" / "namespaces").glob("*.jsonl")
            assert sum(len(p.read_text().splitlines()) for p in records) > 0
    assert len(ran) >= 11, ran
    assert ["datastore-mapper", "seed"] in [a[:2] for a in ran]
    # the migration was undone, the tenant erased and restored: the demo data is as seeded
    assert entities("globex") == {"Item": 600, "Parent": 6}
    items = list(datastore.Client(project=TEST_PROJECT, namespace="acme").query(
        kind="Item").fetch())
    assert len(items) == 3000 and all("category" in e and "section" not in e for e in items)
    assert (tmp_path / "b" / "exports" / "export_entities" / "schema.json").exists()


def test_the_readme_s_streaming_command_runs_on_bqemulator(emulator, bigquery_emulator,
                                                            tmp_path, monkeypatch):
    from devtools.seed import DEMO_DATASET, NamespaceSpec, seed_dataset

    seed_dataset(TEST_PROJECT, [NamespaceSpec(s.name, max(1, s.count // 10))
                                for s in DEMO_DATASET])
    (argv,) = [a for a in _readme_commands() if "--bigquery_table" in a]
    argv = [a.replace("P:", f"{bigquery_emulator.project}:") for a in argv]
    walk = Walk(tmp_path, monkeypatch)
    walk.run([*argv, "--bigquery_emulator_host", bigquery_emulator.host])
    rows = bigquery_emulator.rows("exports.orders_globex")
    assert len(rows) == 60


# --- the task pages: export for BigQuery, run on Dataflow ---------------------------------------

#: Shell around the export page's loading commands (a loop over the schemas); with bq and
#: gcloud (README_NOT_RUN) they need a Google Cloud project: the test checks instead that the
#: paths the loop reads exist.
LOOP_WORDS = ("for", "done")


def test_the_export_page_s_commands_run_and_make_what_its_loading_loop_reads(
        emulator, tmp_path, monkeypatch):
    from devtools.seed import DEMO_DATASET, NamespaceSpec, seed_dataset

    seed_dataset(TEST_PROJECT, [NamespaceSpec(s.name, max(1, s.count // 10))
                                for s in DEMO_DATASET])
    walk = Walk(tmp_path, monkeypatch)
    ran = []
    for argv in page_commands(ROOT / "docs" / "export-bigquery.md"):
        if argv[0] in README_NOT_RUN or argv[0] in LOOP_WORDS or argv[0].startswith("kind=$("):
            continue
        walk.run(argv)
        ran.append(argv)
    assert [a[:3] for a in ran] == [["datastore-mapper", "--job", "export_entities"]], ran
    # What `gcloud storage cp -r .../schemas .` and the `bq load` loop read: a schema per kind,
    # and each namespace's file of that kind.
    job = tmp_path / "b" / "exports" / "export_entities"
    schemas = sorted(p.stem for p in (job / "schemas").glob("*.json"))
    assert schemas == ["Item", "Parent"], schemas
    for kind in schemas:
        assert list(job.glob(f"namespaces/*/{kind}.jsonl")), kind


#: The Dataflow page's commands that no test runs, and why.
DATAFLOW_NOT_RUN = {
    "build-worker-image": "builds and pushes a container image: needs Docker and a registry",
    "...": "an illustration of the settings, not a whole command",
}


def test_the_dataflow_page_s_run_dataflow_commands_make_the_documented_launch():
    ran = []
    for argv in page_commands(ROOT / "docs" / "dataflow.md"):
        script = next((a for a in argv if a.endswith("run_dataflow.sh")), None)
        assert script, argv
        if any(a in DATAFLOW_NOT_RUN or a.endswith("=...") for a in argv):
            continue
        env = dict(a.split("=", 1) for a in argv if re.match(r"[A-Z_]+=", a))
        proc = subprocess.run(["bash", str(ROOT / script)], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, env={**os.environ, **env, "DRY_RUN": "1"})
        assert proc.returncode == 0, proc.stderr
        assert "-m pipeline --runner=DataflowRunner --project=my-project" in proc.stdout
        assert f"--job={env['JOB']}" in proc.stdout and f"--output={env['OUTPUT']}" in proc.stdout
        assert "--max_num_workers=10" in proc.stdout
        ran.append(argv)
    assert len(ran) == 1, ran
