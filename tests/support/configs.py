"""A run's config as the launcher resolves it, for tests that drive the graph's parts directly."""
from __future__ import annotations

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.config import RunConfig
from pipeline.launch.resolve import resolve
from tests.support import TEST_PROJECT


def run_config(job: str, *args: str, host: str | None = None) -> RunConfig:
    """``python -m pipeline --job JOB --project test-project [--emulator_host HOST] ARGS``,
    resolved (nothing is checked against Datastore, nothing runs)."""
    argv = ["--job", job, "--project", TEST_PROJECT, *args]
    if host:
        argv += ["--emulator_host", host]
    return resolve(PipelineOptions(argv))
