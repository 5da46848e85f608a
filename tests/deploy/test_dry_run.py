"""The Dataflow path, offline: DataflowRunner translates the mapper with Beam's
``--dry_run=True`` (translate, stage locally, do not submit), and what travels to the workers
pickles cleanly. What stays unverified without a project is listed in docs/dataflow-template.md,
"What is verified"."""
from __future__ import annotations

import sys
import tarfile

import apache_beam as beam
import pytest
from apache_beam.internal import pickler
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.portability.api import beam_runner_api_pb2

from pipeline.graph.build import build
from pipeline.graph.read import RangeRestrictions, ReadRangeFn
from pipeline.graph.summary import FinishRunFn
from pipeline.launch.resolve import resolve
from tests.support.offline_gcp import DATAFLOW_ARGS, ROOT


def dry_run(args):
    """Build the mapper with DataflowRunner options and translate it (no submission)."""
    options = PipelineOptions(args)
    run = resolve(options)
    p = beam.Pipeline(options=options)
    build(p, run)
    result = p.run()
    return run, p.runner.proto_pipeline, result


def transforms_by_name(proto):
    return {t.unique_name: t for t in proto.components.transforms.values()}


# --- the Dataflow path translates --------------------------------------------------------------

@pytest.mark.timeout(90)
def test_dataflow_dry_run_translates_the_mapper_and_stages_our_sdist(offline_gcp, tmp_path):
    """DataflowRunner translates the whole graph offline; the splittable DoFn and the plan go
    to the workers pickled, and --setup_file makes Beam's own stager build our sdist."""
    run, proto, result = dry_run(DATAFLOW_ARGS + [
        "--job=count_keys", "--params=by_parent=true", "--output=gs://bucket-name/out",
        f"--setup_file={ROOT / 'setup.py'}"])
    assert result.state == "DONE" and result.job is not None  # dry run: translated, not sent

    t = transforms_by_name(proto)
    for name in ["Mapper/ExpandNamespaces", "Mapper/ReshuffleNamespaces", "Mapper/SplitNamespaces",
                 "Mapper/ReshuffleRanges", "Mapper/ReadRanges", "Mapper/AllStats",
                 "Mapper/RangeTotals", "Mapper/NamespaceTotals", "Mapper/JobTotals",
                 "Mapper/Summary", "Mapper/WriteFiles/NamespaceFiles/WriteShards0",
                 "Mapper/WriteFiles/NamespaceFiles/WriteShards1",
                 "Mapper/WriteFiles/NamespaceFiles/Compose", "Mapper/TotalsWithFiles",
                 "Mapper/NamespaceCompleted"]:
        assert name in t, f"{name} missing from the Dataflow graph"
    assert t["Mapper/RangeTotals"].spec.urn == "beam:transform:combine_per_key:v1"

    # ReadRanges is a splittable DoFn (it has a restriction coder), fed by ReshuffleRanges.
    read = t["Mapper/ReadRanges/ParDo(ReadRangeFn)"]
    assert read.spec.urn == "beam:transform:pardo:v1"
    payload = beam_runner_api_pb2.ParDoPayload.FromString(read.spec.payload)
    assert payload.restriction_coder_id, "ReadRangeFn is not translated as a splittable DoFn"
    assert set(read.inputs.values()) <= set(t["Mapper/ReshuffleRanges"].outputs.values())

    # The DoFns as the workers will get them: unpickled from the graph, with the run inside.
    fn = pickler.loads(payload.do_fn.payload)[0]
    assert isinstance(fn, ReadRangeFn)
    assert fn.run.job.name == "count_keys" and fn.read.target.project == "my-project"
    assert fn.run.job.params.text("by_parent") == "true"
    finish = beam_runner_api_pb2.ParDoPayload.FromString(t["Finish"].spec.payload)
    finish_fn = pickler.loads(finish.do_fn.payload)[0]
    assert isinstance(finish_fn, FinishRunFn)
    assert finish_fn.run.output.summary_path == "gs://bucket-name/out/count_keys/summary.json"

    # Workers run Beam 2.77's container and pip-install the sdist Beam built from setup.py.
    (env,) = proto.components.environments.values()
    docker = beam_runner_api_pb2.DockerPayload.FromString(env.payload)
    assert docker.container_image.endswith(f"beam_python{sys.version_info[0]}.{sys.version_info[1]}"
                                           f"_sdk:{beam.__version__}")
    staged = {}
    for dep in env.dependencies:
        name = beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(dep.role_payload).staged_name
        staged[name] = beam_runner_api_pb2.ArtifactFilePayload.FromString(dep.type_payload).path
    assert "workflow.tar.gz" in staged, staged
    with tarfile.open(staged["workflow.tar.gz"]) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    assert {"pipeline/__init__.py", "pipeline/graph/read.py", "jobs/__init__.py"} <= members


@pytest.mark.timeout(60)
def test_dataflow_dry_run_with_a_worker_image_stages_no_package(offline_gcp):
    """With our packages preinstalled in the worker image, no sdist is staged (a staged one
    would be pip-installed on each worker, which needs PyPI)."""
    image = "us-central1-docker.pkg.dev/my-project/dataflow/datastore-mapper-worker:1"
    _, proto, _ = dry_run(DATAFLOW_ARGS + ["--job=count_keys", f"--sdk_container_image={image}"])
    (env,) = proto.components.environments.values()
    assert beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image == image
    names = {beam_runner_api_pb2.ArtifactStagingToRolePayload.FromString(d.role_payload).staged_name
             for d in env.dependencies}
    assert "workflow.tar.gz" not in names


def test_run_config_job_and_read_fn_pickle_cleanly(offline_gcp):
    options = PipelineOptions(DATAFLOW_ARGS + ["--job=created_between",
                                               "--params=from=2026-11-01,to=2026-11-02",
                                               "--read_time=start"])
    run = resolve(options)
    back = pickler.loads(pickler.dumps(run))
    assert (back.job.name, back.read.target, back.read.read_time, back.read.query) == (
        run.job.name, run.read.target, run.read.read_time, run.read.query)
    assert back.read == run.read and back.output == run.output
    assert type(back.job.spec) is type(run.job.spec)
    assert dict(back.job.params) == dict(run.job.params)
    job = pickler.loads(pickler.dumps(run.job.spec))
    assert type(job) is type(run.job.spec)
    fn = pickler.loads(pickler.dumps(ReadRangeFn(run)))
    assert isinstance(fn, ReadRangeFn) and fn.run.job.name == "created_between"
    assert isinstance(pickler.loads(pickler.dumps(RangeRestrictions())), RangeRestrictions)
