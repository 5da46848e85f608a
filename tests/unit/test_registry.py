"""Job modules that cannot be imported: one UsageError naming the module and what went wrong."""
from __future__ import annotations

import sys

import pytest

from pipeline.api.registry import get_job, load_modules
from pipeline.errors import UsageError


@pytest.fixture
def modules_dir(tmp_path, monkeypatch):
    """A directory on sys.path for throw-away job modules (forgotten again afterwards)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("badjobs_"):
            del sys.modules[name]


@pytest.mark.parametrize("source, expected", [
    ("import no_such_dependency_xyz\n",
     ["cannot import job module 'badjobs_m'", "No module named 'no_such_dependency_xyz'"]),
    ("raise RuntimeError('the database password is not set')\n",
     ["cannot import job module 'badjobs_m'", "RuntimeError: the database password is not set"]),
    ("def broken(:\n    pass\n",
     ["cannot import job module 'badjobs_m'", "SyntaxError:", "badjobs_m.py, line 1"]),
    ("x = {}['missing']\n", ["cannot import job module 'badjobs_m'", "KeyError: 'missing'"]),
    ("import sys\nsys.exit('no')\n", ["cannot import job module 'badjobs_m'", "SystemExit: no"]),
    ("raise ValueError('two\\nlines')\n", ["ValueError: two lines"]),
], ids=["missing-dependency", "raises", "syntax-error", "key-error", "sys-exit", "multi-line"])
def test_a_module_that_fails_to_import_is_a_usage_error(modules_dir, source, expected):
    (modules_dir / "badjobs_m.py").write_text(source, encoding="utf-8")
    with pytest.raises(UsageError) as info:
        load_modules(["badjobs_m"])
    msg = str(info.value)
    assert "\n" not in msg
    for fragment in expected:
        assert fragment in msg


def test_module_class_of_a_module_that_fails_to_import(modules_dir):
    (modules_dir / "badjobs_c.py").write_text("1 / 0\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"'badjobs_c'.*ZeroDivisionError: division by zero"):
        get_job("badjobs_c:Job")


def test_a_missing_module_is_still_named():
    with pytest.raises(UsageError, match=r"cannot import job module 'badjobs_absent': No module"):
        load_modules(["badjobs_absent"])
