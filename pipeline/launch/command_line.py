"""What the command line alone decides, with no Beam and no service: the project, the job class
and the sampling bound. The CLI checks it before importing Beam (``cli.first_checks``), and
``resolve`` takes its answer from here too, so both say the same thing in the same order."""
from __future__ import annotations

import os
from typing import Optional, Sequence, Type

from pipeline.api.job import JobSpec
from pipeline.api.registry import get_job, load_modules
from pipeline.errors import UsageError
from pipeline.launch.options import MAX_SAMPLES


def project_and_job(project: Optional[str], emulator_host: Optional[str], job: Optional[str],
                    shards: int, oversampling: int,
                    job_modules: Sequence[str]) -> tuple[str, Type[JobSpec]]:
    """(the project, the job's class), or a UsageError naming what is missing or wrong."""
    if not project and emulator_host:  # what `datastore-mapper emulator` says to export
        project = os.environ.get("DATASTORE_PROJECT_ID") or None
    if not project:
        raise UsageError("--project is required (the Google Cloud project; any id works with "
                         "the emulator, and $DATASTORE_PROJECT_ID is the default there)")
    if not job:
        raise UsageError("--job is required; --list_jobs shows the registered jobs")
    if shards * oversampling > MAX_SAMPLES:
        raise UsageError(f"--shards {shards} x --oversampling {oversampling} = "
                         f"{shards * oversampling} scatter keys per namespace: at most "
                         f"{MAX_SAMPLES} are sampled; lower one of them")
    load_modules(job_modules)
    return project, get_job(job)
