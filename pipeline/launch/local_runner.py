"""Local runs: Beam's FnApiRunner in this process, and nothing else.

Pinned because plain DirectRunner first tries to download Prism (offline: it fails), and kept
to one in-process worker because Beam's other local modes lose or corrupt data:

- ``--direct_num_workers`` above 1 makes the FnApiRunner split each bundle across workers
  (``ParallelBundleManager``) and merge their responses keeping only metrics and errors: the
  parts' residual roots are dropped, so every self-checkpoint of a splittable DoFn is lost and
  a range read in slices stops after its first slice, without an error (measured: 800 of 3,000
  entities; Apache Beam issue #19842, open in 2.77);
- ``multi_threading`` corrupted data in our trials (``shared/notes/beam.md``);
- ``multi_processing`` with one worker runs it in a subprocess whose death the runner does not
  notice unless a bundle is in flight: the run would wait for it forever.

Against the emulator, which is what limits a local run, one in-process worker reads as fast as
two worker processes did, with half the CPU and a third of the memory (docs/performance.md). A
run that needs more workers runs on Dataflow.
"""
from __future__ import annotations

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

from pipeline.errors import UsageError

#: How local runs are pinned: the FnApiRunner, in this process, one worker.
LOCAL_ARGS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory",
              "--direct_num_workers=1"]


def check_local(options: PipelineOptions) -> None:
    """Refuse Beam's local modes that lose data: one line, naming the option."""
    direct = options.view_as(DirectOptions)
    mode = direct.direct_running_mode or "in_memory"
    if mode != "in_memory":
        raise UsageError(
            f"--direct_running_mode={mode} is not supported: local runs are in this process "
            "(in_memory), because Beam's other local modes lose or corrupt data (see "
            "docs/design.md, 'Local runs'); leave it out, or run on Dataflow "
            "(--runner=DataflowRunner) for more workers")
    if (direct.direct_num_workers or 1) != 1:
        raise UsageError(
            f"--direct_num_workers={direct.direct_num_workers} is not supported: Beam's "
            "local runner drops the checkpoints of a splittable read with more than one "
            "worker (a range read in slices would stop after its first slice, losing data); "
            "leave it out, or run on Dataflow (--runner=DataflowRunner) for more workers")
