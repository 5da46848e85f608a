"""The package's layers, as the imports make them: the job API stays light, and every import
points down (core <- api <- config <- datastore <- sinks <- graph <- transforms <- launch), with
no circle."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "pipeline"
#: Each layer may import the layers listed before it (and itself), never one after it.
LAYERS = ["errors", "core", "api", "config", "datastore", "sinks", "graph", "transforms",
          "launch"]


def _module(path: Path) -> str:
    rel = path.relative_to(PACKAGE).with_suffix("")
    parts = [p for p in rel.parts if p != "__init__"]
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """The pipeline modules a file imports, at any depth of the file (functions included); with
    ``from pipeline.X import name``, ``X.name`` too (a module, or a name callers filter out)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pipeline"):
            module = node.module[len("pipeline."):] if node.module != "pipeline" else ""
            out.add(module)
            # ``from pipeline.core import terminal``: the name may be a module too
            out.update(f"{module}.{a.name}" if module else a.name for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name[len("pipeline."):] for a in node.names
                       if a.name.startswith("pipeline."))
    return {m for m in out if m}


def _layer(module: str) -> int:
    return LAYERS.index(module.split(".")[0])


MODULES = {_module(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts
           and p.name != "__main__.py" and p != PACKAGE / "__init__.py"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    for imported in _imports(MODULES[module]):
        assert _layer(imported) <= _layer(module), (
            f"pipeline.{module} (layer {LAYERS[_layer(module)]}) imports pipeline.{imported} "
            f"(layer {LAYERS[_layer(imported)]}), a layer above it")


#: launch/, the top layer, is layered too (docs/layout.md lists it in this order): each of its
#: modules may import those listed before it, never one after it.
LAUNCH = ["options", "logs", "resolve", "preflight", "progress", "launcher", "cli", "template"]


def test_launch_modules_import_only_those_below_them():
    launch = sorted(m.split(".", 1)[1] for m in MODULES if m.startswith("launch."))
    assert sorted(LAUNCH) == launch, f"launch/ has {launch}; LAUNCH orders {sorted(LAUNCH)}"
    for i, name in enumerate(LAUNCH):
        for imported in _imports(MODULES[f"launch.{name}"]):
            if imported in MODULES and imported.startswith("launch."):
                assert imported.split(".", 1)[1] in LAUNCH[:i], (
                    f"pipeline.launch.{name} imports pipeline.{imported}, not below it in LAUNCH")


def test_no_import_circle():
    graph = {m: {i for i in _imports(p) if i in MODULES} for m, p in MODULES.items()}
    done: set = set()

    def visit(m, path):
        if m in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(m):] + [m]))
        if m in done:
            return
        for n in sorted(graph[m]):
            visit(n, path + [m])
        done.add(m)

    for m in sorted(graph):
        visit(m, [])


def test_writing_a_job_imports_no_beam_and_no_google_client():
    code = ("import sys\n"
            "before = set(sys.modules)  # site may load namespace packages (google.cloud)\n"
            "import pipeline, jobs\n"
            "heavy = sorted(m for m in set(sys.modules) - before\n"
            "               if m.split('.')[0] in ('apache_beam', 'grpc')\n"
            "               or m.startswith(('google.cloud.', 'google.api_core')))\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing pipeline and jobs loads {out.stdout.strip()[:300]}"
