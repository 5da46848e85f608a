"""Local runs on Beam's FnApiRunner, and a fix for its multi-worker mode.

With ``direct_num_workers > 1`` the FnApiRunner's ``ParallelBundleManager``
splits a bundle across workers and merges their responses, but the merge keeps
only metrics and errors: the parts' ``residual_roots`` are dropped. Every
self-checkpoint (``defer_remainder``) of a splittable DoFn is then silently
lost — a range read in slices stops after its first slice (measured: 800 of
3,000 entities with 8 ranges of 100-entity slices, and no error). Apache Beam
issue #19842 asks for this to be verified; it is still open in 2.77.

``apply_residual_fix()`` replaces that method with Beam 2.77's own code plus the
missing merge, so the remaining work is scheduled again as with one worker.
``tests/test_pipeline_emulator.py`` proves it: exactly-once over many slices
with two worker processes.
"""
from __future__ import annotations

import threading

import apache_beam
from apache_beam.metrics.monitoring_infos import consolidate
from apache_beam.portability.api import beam_fn_api_pb2
from apache_beam.runners.portability.fn_api_runner import fn_runner
from apache_beam.utils import thread_pool_executor

#: How local runs are pinned: the FnApiRunner (plain DirectRunner first tries to
#: download Prism), in this process (multi_threading corrupted data in our trials, see
#: shared/notes/beam.md). Measured (issue 15's bench): against the emulator, which is what
#: limits a local run, one in-process worker reads as fast as two worker processes, with
#: half the CPU, a third of the memory and ~2 s less start-up. Two processes stay one option
#: away: TWO_PROCESSES.
LOCAL_ARGS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory",
              "--direct_num_workers=1"]
TWO_PROCESSES = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
                 "--direct_num_workers=2"]

_lock = threading.Lock()
#: The step the runner last sent a bundle of (for a message when a worker dies under it).
_current_step: list = [None]


def current_step() -> str | None:
    return _current_step[0]


def _step_of(stage) -> str | None:
    """A fused stage's first step of ours, as the graph names it (``Mapper/ReadRanges``)."""
    for t in getattr(stage, "transforms", ()):
        parts = t.unique_name.split("/")
        if parts and parts[0] in ("Mapper", "Finish") and parts[-1] and "Reshuffle" not in t.unique_name:
            return "/".join(parts[:2])
    return None


def _process_bundle(self, inputs, expected_outputs, fired_timers, expected_output_timers,
                    dry_run=False):
    """ParallelBundleManager.process_bundle of Beam 2.77, keeping residual roots."""
    _current_step[0] = _step_of(getattr(self.bundle_context_manager, "stage", None)) or \
        _current_step[0]
    part_inputs = [{} for _ in range(self._num_workers)]
    timer_inputs = [fired_timers if i == 0 else {} for i in range(self._num_workers)]
    for name, input in inputs.items():
        for ix, part in enumerate(input.partition(self._num_workers)):
            part_inputs[ix][name] = part

    def execute(part_map_input_timers):
        part_map, input_timers = part_map_input_timers
        bundle_manager = fn_runner.BundleManager(
            self.bundle_context_manager, self._progress_frequency,
            cache_token_generator=self._cache_token_generator)
        return bundle_manager.process_bundle(
            part_map, expected_outputs, input_timers, expected_output_timers, dry_run)

    results, split_result_list = [], []
    with thread_pool_executor.shared_unbounded_instance() as executor:
        for result, split_result in executor.map(execute, zip(part_inputs, timer_inputs)):
            split_result_list += split_result
            results.append(result)
    merged = beam_fn_api_pb2.InstructionResponse(
        process_bundle=beam_fn_api_pb2.ProcessBundleResponse(
            monitoring_infos=consolidate(
                mi for r in results for mi in r.process_bundle.monitoring_infos),
            residual_roots=[root for r in results for root in r.process_bundle.residual_roots],
            requires_finalization=any(r.process_bundle.requires_finalization for r in results)),
        error=next((r.error for r in results if r.error), ""))
    return merged, split_result_list


_process_bundle.keeps_residuals = True


def apply_residual_fix() -> None:
    """Make multi-worker FnApiRunner runs keep SDF checkpoints (idempotent)."""
    with _lock:
        manager = fn_runner.ParallelBundleManager
        if getattr(manager.process_bundle, "keeps_residuals", False):
            return
        if not apache_beam.__version__.startswith("2.77."):
            raise RuntimeError(
                f"pipeline/local_runner.py copies Beam 2.77's ParallelBundleManager; this is Beam "
                f"{apache_beam.__version__}: check whether it still drops residual_roots and "
                "update the copy")
        manager.process_bundle = _process_bundle
