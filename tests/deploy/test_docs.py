"""The documentation, offline: the MkDocs site (``mkdocs.yml``, ``docs/``) builds with
``--strict`` (any warning fails: a broken link or anchor, a page left out of the nav), the
README's links into ``docs/`` resolve, the README keeps its two set-up commands on its first
screen and stays short, the option tables of ``docs/options.md`` match the parser both ways (with
its defaults), the package tree of ``docs/layout.md`` names every module of ``pipeline/`` (its
first two levels module for module, both ways), and the pipeline ``docs/transforms.md`` shows is
``examples/own_pipeline.py``'s.

What the pages show as printed output, and their command walk-throughs, are run on the emulator
by ``tests/emulator/test_docs_outputs.py``."""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.launch.options import add_mapper_arguments

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_the_site_builds_with_strict_and_no_warning(tmp_path):
    pytest.importorskip("mkdocs", reason="mkdocs is in the test extra: pip install -e '.[test]'")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
         str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "WARNING" not in out, out[-4000:]
    pages = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.glob("**/*.md"))
    for page in pages:  # every page was built (strict also refuses one left out of the nav)
        built = tmp_path / "site" / ("index.html" if page == "index.md"
                                     else page[:-len(".md")] + "/index.html")
        assert built.exists(), page


def _links(text: str) -> list:
    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_the_readmes_links_into_docs_resolve():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    local = [link for link in _links(text) if not re.match(r"[a-z]+:", link)]
    assert any(link.startswith("docs/") for link in local)
    for link in local:
        path = link.split("#", 1)[0]
        assert (ROOT / path).exists(), f"README links to {link}, which does not exist"
    linked = {Path(link.split("#", 1)[0]).name for link in local if link.startswith("docs/")}
    task_pages = {"export-bigquery.md", "stream-bigquery.md", "migrate.md", "tenants.md",
                  "dataflow.md"}
    assert task_pages <= linked, task_pages - linked


def test_the_readme_is_short_and_its_first_screen_has_the_two_set_up_commands():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, len(lines)
    first_screen = "\n".join(lines[:30])
    assert "./run_demo.sh" in first_screen and "bash .ci/run" in first_screen
    assert "chromium" in first_screen and "apt-get" in first_screen and "root" in first_screen


# --- docs/options.md against the parser ------------------------------------------------------

#: Defaults that come from the environment, shown as the variable's name.
FROM_ENVIRONMENT = {"--emulator_host": "$DATASTORE_EMULATOR_HOST",
                    "--bigquery_emulator_host": "$BIGQUERY_EMULATOR_HOST"}


def _parser_options() -> dict:
    """Each option of the mapper's parser (its first spelling) -> its argparse action."""
    parser = argparse.ArgumentParser(add_help=False)
    add_mapper_arguments(parser)
    return {a.option_strings[0]: a for a in parser._actions if a.option_strings}


def _table_rows() -> dict:
    """``--name`` -> its default cell, from every option table of docs/options.md."""
    rows = {}
    for line in (DOCS / "options.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `(--[a-z_]+)` \|([^|]*)\|", line)
        if m:
            assert m.group(1) not in rows, f"{m.group(1)} is in the tables twice"
            rows[m.group(1)] = m.group(2).strip()
    return rows


def _shown(default) -> str:
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def test_the_option_tables_list_every_option_of_the_parser_with_its_default():
    options, rows = _parser_options(), _table_rows()
    assert sorted(rows) == sorted(options), (
        f"missing from docs/options.md: {sorted(set(options) - set(rows))}; "
        f"not options of the parser: {sorted(set(rows) - set(options))}")
    for name, cell in rows.items():
        default = options[name].default
        if name in FROM_ENVIRONMENT:
            assert cell == f"`{FROM_ENVIRONMENT[name]}`", (name, cell)
        elif default is None or isinstance(default, list):
            continue  # no default, or a descriptive one ("the job's query (all)")
        elif cell or not isinstance(default, bool):
            assert cell.strip("`") == _shown(default), (name, cell, default)


# --- docs/layout.md against the tree ---------------------------------------------------------

def _layout_block() -> str:
    text = (DOCS / "layout.md").read_text(encoding="utf-8")
    return re.search(r"```\n(pipeline/\n.*?)```", text, re.S).group(1)


def test_the_layout_page_names_every_module_and_package_of_pipeline():
    block = _layout_block()
    named = set(re.findall(r"([A-Za-z_]\w*(?:\.py|/))", block))
    missing = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        rel = path.relative_to(ROOT / "pipeline")
        if "__pycache__" in rel.parts or rel.name == "__main__.py":
            continue
        if len(rel.parts) > 1 and f"{rel.parts[0]}/" not in named:
            missing.append(f"{rel.parts[0]}/")
        if rel.name != "__init__.py" and rel.name not in named:
            missing.append(str(rel))
    assert not missing, f"docs/layout.md does not name: {sorted(set(missing))}"


def _in_the_tree(folder: Path) -> set:
    """A folder's modules (not ``__init__.py``, ``__main__.py``) and its folders of modules."""
    return ({p.name for p in folder.glob("*.py") if p.name not in ("__init__.py", "__main__.py")}
            | {f"{d.name}/" for d in folder.iterdir() if d.is_dir() and any(d.rglob("*.py"))})


def test_the_layout_page_lists_pipeline_and_each_of_its_folders_module_for_module():
    """The tree's first two levels, one entry a line (``pipeline/X``, ``pipeline/F/X``), are the
    package's, both ways: no module left out, none listed that is not there (launch/ included:
    each module of it on its own line)."""
    listed: dict = {"": set()}
    folder = None
    for line in _layout_block().splitlines()[1:]:
        m = re.match(r"( {2}| {4})([A-Za-z_]\w*(?:\.py|/))(?:\s|$)", line)
        if not m:
            continue  # a description going on over more lines
        name = m.group(2)
        if len(m.group(1)) == 2:
            listed[""].add(name)
            folder = name if name.endswith("/") else None
            if folder:
                listed[folder] = set()
        else:
            assert folder, f"docs/layout.md: {name} is listed under no folder"
            listed[folder].add(name)
    listed[""].discard("__init__.py")
    assert "launch/" in listed and listed["launch/"], "docs/layout.md lists no launch/ module"
    for where, names in sorted(listed.items()):
        actual = _in_the_tree(ROOT / "pipeline" / where)
        assert names == actual, (
            f"docs/layout.md, pipeline/{where}: not in the tree {sorted(names - actual)}, "
            f"not listed {sorted(actual - names)}")


# --- docs/transforms.md against examples/own_pipeline.py ------------------------------------

def test_the_transforms_page_shows_the_example_pipeline_as_it_is():
    text = (DOCS / "transforms.md").read_text(encoding="utf-8")
    (block,) = re.findall(r"```python\n(.*?)```", text, re.S)
    source = {line.strip() for line in
              (ROOT / "examples" / "own_pipeline.py").read_text(encoding="utf-8").splitlines()}
    for line in block.splitlines():
        if line.strip() and not line.startswith("def build("):
            assert line.strip() in source, f"not in examples/own_pipeline.py: {line!r}"
    assert "python -m examples.own_pipeline --project demo" in text


# --- docs/jobs.md against the registry ----------------------------------------------------------

def test_the_jobs_table_lists_every_ready_made_job():
    from pipeline.api.registry import known_jobs, load_modules

    load_modules()
    ready_made = {name for name, cls in known_jobs().items() if cls.__module__.startswith("jobs.")}
    text = (DOCS / "jobs.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"^\| `([a-z_]+)` \|", text, re.M))
    assert listed == ready_made, (sorted(ready_made - listed), sorted(listed - ready_made))
