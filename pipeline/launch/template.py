"""The Flex Template launcher: the same CLI, restricted to what a console user may ask.

Dataflow's template launcher runs ``flex_main.py`` (which calls :func:`main`) with the
parameters of ``metadata.json`` as ``--name=value`` and its own options (``--project``,
``--region``, ``--temp_location``, ``--setup_file``, ...). This module checks every argument
against an **allow-list** before it imports anything (no job module, no Beam), and:

- accepts the template's parameters (the options of the option table,
  ``pipeline.launch.options.OPTIONS``, that have one; ``metadata.json`` is made from it), and the
  Dataflow options of :data:`DATAFLOW_OPTIONS` (each with the reason it is safe), in both the
  ``--name=value`` and the ``--name value`` forms, repeated or not;
- accepts the options that change which code runs or where only with the value that Google's
  launcher or this module injects (:data:`INJECTED`): ``--runner=DataflowRunner``,
  ``--setup_file=$FLEX_TEMPLATE_PYTHON_SETUP_FILE``,
  ``--requirements_file=$FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE`` (unset in our image, so
  refused) and ``--sdk_container_image=$MAPPER_WORKER_IMAGE``;
- refuses everything else with one line naming the option: the code- and location-changing
  options of :data:`REFUSED` with their reason (another runner or image, extra packages,
  ``--sdk_location``, plugins, environment type/config, endpoint overrides, the pickle
  library, ...), experiments and service options that name an image, a package, an endpoint,
  ... (:data:`CODE_WORDS`), and any option it does not know (abbreviations are not options);
- accepts every location only as a ``gs://BUCKET/...`` path without ``..`` (anywhere), ``.``
  segments, backslashes or control characters: ``--output``, ``--dead_letter`` (alias
  ``--bigquery_dead_letter``; a file: not ending with ``/``), ``--temp_location``,
  ``--staging_location``, ``--template_location`` and the job's path parameters
  (``JobSpec.path_parameters``: ``restore_entities``' ``from``);
- refuses ``--job_module`` and ``module:Class`` job names: a console user must not make
  the launcher import arbitrary modules. Only jobs registered by the modules baked into
  the image run: ``jobs`` (always) and those listed in ``$MAPPER_JOBS_MODULES``
  (comma-separated, set when the image is built, never a parameter);
- always launches on Dataflow (``--runner=DataflowRunner`` unless given) and so never
  blocks: the CLI returns as soon as a remote runner has accepted the job;
- with ``$MAPPER_WORKER_IMAGE`` (baked into the image) runs the workers on that custom
  SDK container, which has our packages preinstalled, and drops ``--setup_file``: staging
  the sdist would make each worker pip-install it, which needs PyPI.

**Assumed, not verified** (nothing here runs Google's launcher): that Google's Python
launcher passes its options in Beam's snake_case spelling as ``--name=value`` (flags such as
``--no_use_public_ips`` bare), ``--setup_file`` exactly as ``$FLEX_TEMPLATE_PYTHON_SETUP_FILE``,
no ``--runner`` (we add it; ``--runner=DataflowRunner`` is accepted too), no option outside
:data:`DATAFLOW_OPTIONS` and :data:`INJECTED` for the console's fields, and no
``--sdk_container_image`` other than one equal to our baked image. A launch that breaks one of
these assumptions is refused with the option's name, not run.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Optional, Sequence

from pipeline.api.registry import known_jobs, load_modules
from pipeline.core.terminal import escape
from pipeline.launch.logs import redact
from pipeline.launch.options import NOT_IN_TEMPLATE, add_mapper_arguments, key_value_list

JOB_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
JOBS_MODULES_ENV = "MAPPER_JOBS_MODULES"
WORKER_IMAGE_ENV = "MAPPER_WORKER_IMAGE"
SETUP_FILE_ENV = "FLEX_TEMPLATE_PYTHON_SETUP_FILE"
REQUIREMENTS_FILE_ENV = "FLEX_TEMPLATE_PYTHON_REQUIREMENTS_FILE"

#: Beam's Dataflow options a console user or Google's launcher may set (Beam 2.77's spelling,
#: aliases included; the tests check each against Beam's own parser), and why each is safe:
#: none changes which code runs, or that it runs on Dataflow.
DATAFLOW_OPTIONS = {
    # Set by Google's launcher from the launch request.
    "project": "the project the job runs in",
    "region": "the Dataflow region of the launch",
    "job_name": "the job's name",
    "temp_location": "Cloud Storage for temporary files (Dataflow requires gs://)",
    "staging_location": "Cloud Storage for what the launcher stages: only our own code",
    "template_location": "where the launcher has the job written for Google's launcher to "
                         "submit",
    "labels": "the job's labels", "label": "the job's labels (alias)",
    # The console's optional worker fields: size, shape, place and identity of the workers.
    "service_account_email": "the workers' identity; Dataflow checks the launcher may act as it",
    "network": "the workers' VPC network",
    "subnetwork": "the workers' subnetwork",
    "use_public_ips": "workers get public IPs",
    "no_use_public_ips": "workers get private IPs only",
    "num_workers": "initial worker count",
    "max_num_workers": "autoscaling ceiling",
    "autoscaling_algorithm": "NONE or THROUGHPUT_BASED",
    "machine_type": "worker machine type", "worker_machine_type": "worker machine type (alias)",
    "disk_size_gb": "worker disk size",
    "disk_type": "worker disk type", "worker_disk_type": "worker disk type (alias)",
    "worker_region": "Compute Engine region of the workers (still Dataflow)",
    "worker_zone": "Compute Engine zone of the workers (still Dataflow)",
    "zone": "Compute Engine zone of the workers (Beam's deprecated name for worker_zone)",
    "dataflow_kms_key": "customer-managed encryption key for the job's state",
    "flexrs_goal": "Flexible Resource Scheduling: COST_OPTIMIZED or SPEED_OPTIMIZED",
    "enable_streaming_engine": "a no-op for a batch job in Beam 2.77 (the launcher may pass it)",
    "experiments": "the console's additional experiments, except those naming code "
                   "(CODE_WORDS)", "experiment": "(alias of experiments)",
    "dataflow_service_options": "the console's service options, except those naming code "
                                "(CODE_WORDS)", "dataflow_service_option": "(alias)",
    "dry_run": "translates the job and stops without submitting it (the tests run the "
               "launcher offline with it)",
}
#: Of DATAFLOW_OPTIONS, those that take no value (argparse store_true/store_false in Beam).
DATAFLOW_FLAGS = frozenset({"use_public_ips", "no_use_public_ips", "enable_streaming_engine"})

#: Options accepted only with the value that is injected (by Google's launcher or by us): the
#: value, or the environment variable that holds it (unset or empty: the option is refused).
INJECTED = {
    "runner": ("DataflowRunner", "it would run the job elsewhere than on Dataflow (FnApiRunner: "
                                 "inside the launcher)"),
    "setup_file": (f"${SETUP_FILE_ENV}", "it would install other code on the workers"),
    "requirements_file": (f"${REQUIREMENTS_FILE_ENV}", "it would install other packages on the "
                                                       "workers"),
    "sdk_container_image": (f"${WORKER_IMAGE_ENV}", "it would run the workers on another image"),
}

_CODE = "it adds code for the launcher or the workers to run"
_IMAGE = "it changes the container the workers run"
_ENVIRONMENT = "it changes how and where the workers run the code"
_ENDPOINT = "it sends the job or its data to another endpoint than Google's"
#: Options refused whatever their value, and why (each a Beam 2.77 option; the tests check).
#: Any other option outside the allow-list is refused too; these get a specific reason.
REFUSED = {
    "extra_package": _CODE, "extra_packages": _CODE,
    "sdk_location": _CODE + " (another Beam SDK)",
    "beam_plugin": _CODE, "beam_plugins": _CODE,
    "file_to_stage": _CODE, "files_to_stage": _CODE,
    "requirements_cache": _CODE + " (packages for --requirements_file)",
    "requirements_cache_only_sources": _CODE + " (packages for --requirements_file)",
    "maven_repository_url": _CODE + " (jars for cross-language transforms)",
    "pickle_library": "it changes how the pipeline's code is pickled for the workers",
    "save_main_session": "it changes what of the launcher's session the workers unpickle",
    "no_save_main_session": "it changes what of the launcher's session the workers unpickle",
    "worker_harness_container_image": _IMAGE,
    "sdk_harness_container_image_overrides": _IMAGE,
    "prebuild_sdk_container_engine": _IMAGE + " (it builds one)",
    "prebuild_sdk_container_base_image": _IMAGE + " (it builds one)",
    "docker_registry_push_url": _IMAGE + " (it pushes a built one)",
    "cloud_build_machine_type": _IMAGE + " (it builds one)",
    "environment_type": _ENVIRONMENT, "environment_config": _ENVIRONMENT,
    "environment_option": _ENVIRONMENT, "environment_options": _ENVIRONMENT,
    "sdk_worker_parallelism": _ENVIRONMENT,
    "dataflow_endpoint": _ENDPOINT, "job_endpoint": _ENDPOINT, "artifact_endpoint": _ENDPOINT,
    "beam_services": _ENDPOINT, "use_transform_service": _ENDPOINT,
    "dataflow_job_file": "it writes the job's definition where the caller chooses",
    "impersonate_service_account": "it changes the identity that submits the job (the workers' "
                                   "identity is --service_account_email)",
    "streaming": "the mapper is a batch job",
}
#: An experiment or service option whose name holds one of these is refused: it may change the
#: code the workers run (Beam's jar_packages=, Dataflow's runner_harness_container_image=, ...).
CODE_WORDS = ("jar", "image", "container", "package", "sdk_location", "setup_file",
              "requirements", "endpoint", "environment", "harness", "plugin", "pickle",
              "main_session", "url")
_LIST_OPTIONS = ("experiments", "experiment", "dataflow_service_options",
                 "dataflow_service_option")

#: Every option that names a place: Cloud Storage only (bucket as metadata.json has it), for
#: on the launcher VM a local path means nothing (or the VM's own disk); with what it names.
_GCS = re.compile(r"gs://(?P<bucket>[a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(?P<path>/.*)?", re.S)
_PATH_OPTIONS = {"output": "directory", "dead_letter": "file", "bigquery_dead_letter": "file",
                 "temp_location": "directory", "staging_location": "directory",
                 "template_location": "file"}
_EXAMPLES = {"directory": "gs://BUCKET[/PATH]", "file": "gs://BUCKET/PATH/FILE",
             "location": "gs://BUCKET/PATH"}


class TemplateRefused(Exception):
    """A launch the template does not allow; the message says why."""


def _mapper_actions() -> dict[str, argparse.Action]:
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_mapper_arguments(parser)
    return {s[2:]: a for a in parser._actions for s in a.option_strings}


_ALL_MAPPER = _mapper_actions()
#: The template's parameters as option names (aliases included), with their argparse action.
MAPPER_OPTIONS = {n: a for n, a in _ALL_MAPPER.items() if a.dest not in NOT_IN_TEMPLATE}
_REFUSED_MAPPER = {n: NOT_IN_TEMPLATE[a.dest] for n, a in _ALL_MAPPER.items()
                   if a.dest in NOT_IN_TEMPLATE}


def _shown(text: Optional[str]) -> str:
    """A name or value for a one-line message: as it is, or quoted if it holds a newline or
    another character that is not printable."""
    return text if text is None or text.isprintable() else repr(text)


def baked_modules(environ=None) -> list[str]:
    environ = os.environ if environ is None else environ
    return [m.strip() for m in environ.get(JOBS_MODULES_ENV, "").split(",") if m.strip()]


def _accepted() -> str:
    return ("it accepts the template's parameters (" + ", ".join(MAPPER_OPTIONS)
            + "), the Dataflow options " + ", ".join(DATAFLOW_OPTIONS)
            + " and, only as injected, " + ", ".join(INJECTED))


def _refuse_name(name: str) -> TemplateRefused:
    reason = _REFUSED_MAPPER.get(name) or REFUSED.get(name)
    if reason is None and "endpoint" in name:
        reason = _ENDPOINT
    if reason is not None:
        return TemplateRefused(f"--{_shown(name)} is not accepted by the template: {reason}")
    longer = [r for r in sorted({*_REFUSED_MAPPER, *REFUSED}) if r.startswith(name)]
    if name and longer:  # an abbreviation of a refused option is no way around it
        full = longer[0]
        why = _REFUSED_MAPPER.get(full) or REFUSED[full]
        return TemplateRefused(f"--{_shown(name)} is not an option (abbreviations are not "
                               f"options), and --{full} is not accepted by the template: {why}")
    allowed = [a for a in (*MAPPER_OPTIONS, *DATAFLOW_OPTIONS, *INJECTED)
               if name and a.startswith(name)]
    hint = f" (abbreviations are not options: --{allowed[0]}?)" if allowed else ""
    return TemplateRefused(f"--{_shown(name)} is not an option of the template{hint}; "
                           f"{_accepted()}")


def _kind(name: str) -> str:
    """"flag" (no value), "optional" (a value may follow) or "value"."""
    action = MAPPER_OPTIONS.get(name)
    if action is not None:
        return "flag" if action.nargs == 0 else "optional" if action.nargs == "?" else "value"
    return "flag" if name in DATAFLOW_FLAGS else "value"


def _split(argv: Sequence[str]) -> list[tuple[str, Optional[str]]]:
    """The options of ``argv`` as (name, value or None), as argparse reads them; anything that
    is not an accepted option's name (or its value) is refused."""
    known = {*MAPPER_OPTIONS, *DATAFLOW_OPTIONS, *INJECTED}
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("--") or arg == "--":
            raise TemplateRefused(f"{arg!r} is not accepted by the template: it takes only "
                                  "options, as --NAME=VALUE")
        name, eq, value = arg[2:].partition("=")
        if name not in known:
            raise _refuse_name(name)
        kind = _kind(name)
        if kind == "flag":
            if eq:
                raise TemplateRefused(f"--{name} takes no value (give it as --{name}, not "
                                      f"{_shown(arg)})")
            out.append((name, None))
            continue
        if not eq:
            following = argv[i] if i < len(argv) else None
            if following is not None and not following.startswith("-"):
                value = following
                i += 1
            elif kind == "optional":
                value = None
            else:
                raise TemplateRefused(f"--{name} needs a value: give it as --{name}=VALUE")
        out.append((name, value))
    return out


def _path_problem(value: str, kind: str) -> Optional[str]:
    m = _GCS.fullmatch(value)
    if not m:
        return "not a Cloud Storage path"
    if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "it holds a backslash or a control character"
    path = m["path"] or ""
    if ".." in value or "." in path.split("/"):  # '..' anywhere, not only as a segment
        return "it holds '..' or a '.' segment"
    if kind == "file" and (not path.strip("/") or path.endswith("/")):
        return "not a file"
    return None


def _check_path(given: str, value: str, kind: str) -> None:
    """A location (``given``: as the message shows it) must be on Cloud Storage."""
    problem = _path_problem(value, kind)
    if problem:
        what = "path" if kind == "location" else kind
        raise TemplateRefused(
            f"{given} is not accepted by the template ({problem}): use a Cloud Storage {what} "
            f"{_EXAMPLES[kind]}, with no '..', '.' segment, backslash or control character")


def _check_path_parameters(job_cls, params: list) -> None:
    """The job's path parameters (``restore_entities``' ``from``), wherever they are in the
    ``--params`` given, are Cloud Storage paths."""
    names = tuple(getattr(job_cls, "path_parameters", ()))
    if not names:
        return
    for text in params:
        try:
            pairs = key_value_list(text or "")
        except argparse.ArgumentTypeError as e:
            raise TemplateRefused(f"--params={_shown(text)}: {e}") from None
        for key, value in pairs:
            if key in names:
                _check_path(f"--params {key}={_shown(value)} (job {job_cls.name}'s {key})",
                            value, "location")


def _check_value(name: str, value: Optional[str], environ) -> None:
    if name in INJECTED:
        expected, why = INJECTED[name]
        source = ""
        if expected.startswith("$"):
            source, expected = expected, environ.get(expected[1:], "").strip()
        if not expected or value != expected:
            only = (f"only --{name}={expected}" + (f" (from {source})" if source else "")
                    if expected else f"{source} is not set in this template, so no --{name}")
            raise TemplateRefused(f"--{name}={_shown(value)} is not accepted by the template: "
                                  f"{why}; {only} is")
    elif name in _PATH_OPTIONS:
        _check_path(f"--{name}={_shown(value)}", value or "", _PATH_OPTIONS[name])
    elif name in _LIST_OPTIONS:
        for item in (value or "").split(","):
            key = item.split("=", 1)[0].strip().lower()
            word = next((w for w in CODE_WORDS if w in key), None)
            if word:
                raise TemplateRefused(
                    f"--{name}={_shown(value)} is not accepted by the template: {key!r} names "
                    f"'{word}', so it may change the code the workers run; the template refuses "
                    f"{name} naming any of {', '.join(CODE_WORDS)}")


def _has_option(argv: Sequence[str], name: str) -> bool:
    return any(a == f"--{name}" or a.startswith(f"--{name}=") for a in argv)


def _drop_option(argv: Sequence[str], name: str) -> list[str]:
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == f"--{name}":
            skip = True  # its value is the next argument
        elif not a.startswith(f"--{name}="):
            out.append(a)
    return out


def template_argv(argv: Sequence[str], environ=None) -> list[str]:
    """Check a launch and return the CLI arguments to run it with (raises TemplateRefused).

    Every option is checked before any module is imported; then the job's name, and only
    then are the baked job modules imported, to check the job is registered."""
    environ = os.environ if environ is None else environ
    argv = list(argv)
    job = None
    params = []
    for name, value in _split(argv):
        _check_value(name, value, environ)
        if name == "job":
            job = value
        elif name == "params":
            params.append(value)
    if not job:
        raise TemplateRefused("the 'job' parameter is required: a registered job name such as "
                              "count_keys")
    if ":" in job or not JOB_NAME.match(job):
        raise TemplateRefused(
            f"job {job!r} is not a registered job name (lowercase letters, digits and _): the "
            "template runs only registered jobs, not module:Class")
    load_modules(baked_modules(environ))
    if job not in known_jobs():
        raise TemplateRefused(f"unknown job {job!r}; registered jobs in this template: "
                              f"{', '.join(known_jobs()) or '(none)'}")
    _check_path_parameters(known_jobs()[job], params)
    if not _has_option(argv, "runner"):
        argv = ["--runner=DataflowRunner", *argv]
    worker_image = environ.get(WORKER_IMAGE_ENV, "").strip()
    if worker_image:
        argv = _drop_option(argv, "setup_file")
        if not _has_option(argv, "sdk_container_image"):  # given, it is the baked one
            argv.append(f"--sdk_container_image={worker_image}")
    return argv


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = template_argv(argv)
    except TemplateRefused as e:
        print(escape(redact(f"error: {e}")), file=sys.stderr)
        return 2
    except Exception as e:  # e.g. a baked module that fails to import
        print(escape(redact(f"error: {type(e).__name__}: {e}")), file=sys.stderr)
        return 2
    # Imported here, after the checks: the CLI imports Beam, which keeps Beam (and anything a
    # refused option could have loaded through it) off the refusal path.
    from pipeline.launch.cli import main as cli_main

    return cli_main(args)


if __name__ == "__main__":
    sys.exit(main())
