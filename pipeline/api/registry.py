"""Jobs registered by name. Used when the pipeline is built, never on workers:
the resolved job travels to them pickled with the graph."""
from __future__ import annotations

import datetime as dt
import importlib
import os
import re
import sys
from typing import Type

from pipeline.api.job import JobSpec, Params
from pipeline.errors import UsageError

_JOBS: dict[str, Type[JobSpec]] = {}
BUILTIN_MODULES = ("jobs",)


def _default_name(cls: type) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


def register(cls: Type[JobSpec]) -> Type[JobSpec]:
    """Class decorator: make a JobSpec runnable as ``--job NAME``."""
    if not (isinstance(cls, type) and issubclass(cls, JobSpec)):
        raise TypeError(f"@register takes a JobSpec subclass, got {cls!r}")
    name = cls.__dict__.get("name") or _default_name(cls)
    cls.name = name
    other = _JOBS.get(name)
    if other is not None and other is not cls and (
            other.__module__, other.__qualname__) != (cls.__module__, cls.__qualname__):
        raise ValueError(f"job name {name!r} is taken by {other.__module__}.{other.__qualname__}")
    _JOBS[name] = cls
    return cls


def load_modules(modules=()) -> None:
    """Import the ready-made jobs and the given modules, which register theirs. A job module is
    looked for in the current directory first, as ``python -m pipeline`` does (the console
    script's ``sys.path`` starts with its own ``bin`` directory instead)."""
    for mod in BUILTIN_MODULES:
        _import(mod)
    if modules:
        _current_directory_first()
    for mod in modules:
        _import(mod)


def _import(mod: str) -> None:
    try:
        importlib.import_module(mod)
    except ImportError as e:
        where = (f" (looked in: {', '.join(searched_directories())})"
                 if isinstance(e, ModuleNotFoundError) else "")
        raise UsageError(f"cannot import job module {mod!r}: {e}{where}") from None
    except (Exception, SystemExit) as e:  # the module's own code failed while importing
        raise UsageError(f"cannot import job module {mod!r}: importing it raised "
                         f"{_describe(e)}") from None


def _current_directory_first() -> None:
    """The current directory at the front of ``sys.path``, unless it is there already (as
    ``''`` or by its path)."""
    cwd = os.getcwd()
    if not any(os.path.abspath(p or os.curdir) == cwd for p in sys.path):
        sys.path.insert(0, cwd)
        importlib.invalidate_caches()


def searched_directories() -> list[str]:
    """The directories an import looks in (``sys.path``'s that exist), in its order."""
    seen, dirs = set(), []
    for p in sys.path:
        d = os.path.abspath(p or os.curdir)
        if d not in seen and os.path.isdir(d):
            seen.add(d)
            dirs.append(d)
    return dirs


def _describe(err: BaseException) -> str:
    """An exception raised by a module's import, in one line: its type, its message and, for a
    syntax error, the file and line."""
    if isinstance(err, SyntaxError):
        where = f" ({err.filename}, line {err.lineno})" if err.filename else ""
        return f"SyntaxError: {err.msg}{where}"
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def known_jobs() -> dict[str, Type[JobSpec]]:
    """The registered jobs by name, sorted."""
    return dict(sorted(_JOBS.items()))


def get_job(name: str) -> Type[JobSpec]:
    """A registered job, or ``module:Class``; an unknown name lists the registered ones."""
    if name in _JOBS:
        return _JOBS[name]
    if ":" in name:  # module:Class, for a job that is not registered
        mod, _, attr = name.partition(":")
        load_modules([mod])
        module = importlib.import_module(mod)
        cls = getattr(module, attr, None)
        if isinstance(cls, type) and issubclass(cls, JobSpec):
            return cls
        found = sorted(n for n, v in vars(module).items()
                       if isinstance(v, type) and issubclass(v, JobSpec) and v is not JobSpec)
        raise UsageError(f"{name!r}: {mod} has no JobSpec class {attr!r}; its JobSpec classes: "
                         f"{', '.join(found) or '(none)'}")
    known = ", ".join(known_jobs()) or "(none)"
    raise UsageError(f"unknown job {name!r}; registered jobs: {known} "
                     "(add your own module with --job_module)")


def job_params(pairs_lists, job_cls, now: dt.datetime) -> Params:
    """``--params`` (repeatable) -> the job's Params; a parameter it does not list is refused."""
    values: dict[str, str] = {}
    for pairs in pairs_lists:
        for k, v in pairs:
            values[k] = v
    allowed = dict(job_cls.parameters)
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        accepted = ", ".join(f"{k} ({h})" for k, h in allowed.items()) or "none"
        raise UsageError(f"job {job_cls.name} has no parameter {', '.join(map(repr, unknown))}; "
                         f"it accepts: {accepted}")
    return Params(values, now)
