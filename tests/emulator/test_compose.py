"""pipeline.sinks.compose: local concatenation and Cloud Storage compose trees, atomic and idempotent."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline.sinks.files import compose as compose_mod
from pipeline.sinks.files.compose import MAX_COMPOSE_SOURCES, ComposeError, compose
from tests.support import TEST_PROJECT


def line(i: int) -> bytes:
    return f"record {i:05d}\n".encode()


def expected(n: int) -> bytes:
    return b"".join(line(i) for i in range(n))


# ------------------------------------------------------------------------------------------------ local


def make_local(tmp_path, n: int, sub: str = "shards") -> list[str]:
    d = tmp_path / sub
    d.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        p = d / f"shard-{i:05d}"
        p.write_bytes(line(i))
        paths.append(str(p))
    # Listing order must not matter: compose follows the given order.
    return paths


def test_local_three_sources_in_order_deleted_no_temp(tmp_path):
    sources = make_local(tmp_path, 3)
    dest = tmp_path / "out" / "ns.jsonl"
    sources_reordered = [sources[2], sources[0], sources[1]]
    assert compose(sources_reordered, str(dest)) == str(dest)
    assert dest.read_bytes() == line(2) + line(0) + line(1)
    assert not any(os.path.exists(s) for s in sources)
    assert os.listdir(dest.parent) == ["ns.jsonl"]


def test_local_no_sources_gives_empty_file(tmp_path):
    dest = tmp_path / "empty.jsonl"
    compose([], str(dest))
    assert dest.read_bytes() == b""
    assert os.listdir(tmp_path) == ["empty.jsonl"]


def test_local_one_source_moved_or_copied(tmp_path):
    [src] = make_local(tmp_path, 1)
    dest = tmp_path / "copy.jsonl"
    compose([src], str(dest), delete_sources=False)
    assert dest.read_bytes() == line(0) and os.path.exists(src)
    dest2 = tmp_path / "moved.jsonl"
    compose([src], str(dest2))
    assert dest2.read_bytes() == line(0) and not os.path.exists(src)
    # Idempotent: again after success, with the source gone, returns the same file.
    assert compose([src], str(dest2)) == str(dest2)
    assert dest2.read_bytes() == line(0)


def test_local_keep_sources_and_recompose_overwrites(tmp_path):
    sources = make_local(tmp_path, 5)
    dest = tmp_path / "all.jsonl"
    dest.write_bytes(b"old content from a previous run\n")
    compose(sources, str(dest), delete_sources=False)
    assert dest.read_bytes() == expected(5)
    compose(sources, str(dest), delete_sources=False)  # sources still there: recomposed, not appended
    assert dest.read_bytes() == expected(5)
    compose(sources, str(dest))
    assert dest.read_bytes() == expected(5)
    assert sorted(os.listdir(tmp_path)) == ["all.jsonl", "shards"]
    assert os.listdir(tmp_path / "shards") == []


def test_local_failure_mid_copy_leaves_nothing_then_retry_is_exact(tmp_path, monkeypatch):
    sources = make_local(tmp_path, 4)
    dest = tmp_path / "ns.jsonl"
    real_copy = compose_mod._copy_into
    calls = []

    def failing_copy(source, out):
        calls.append(source)
        if len(calls) == 3:
            out.write(b"partial")
            out.flush()
            raise OSError("disk on fire")
        real_copy(source, out)

    monkeypatch.setattr(compose_mod, "_copy_into", failing_copy)
    with pytest.raises(OSError, match="disk on fire"):
        compose(sources, str(dest))
    assert not dest.exists()
    assert sorted(os.listdir(tmp_path)) == ["shards"]  # no temp file either
    assert all(os.path.exists(s) for s in sources)

    monkeypatch.setattr(compose_mod, "_copy_into", real_copy)
    compose(sources, str(dest))
    assert dest.read_bytes() == expected(4)
    assert sorted(os.listdir(tmp_path)) == ["ns.jsonl", "shards"]


def test_local_failure_at_rename_leaves_nothing(tmp_path, monkeypatch):
    sources = make_local(tmp_path, 3)
    dest = tmp_path / "ns.jsonl"

    def failing_replace(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(compose_mod.os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        compose(sources, str(dest))
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["shards"]
    compose(sources, str(dest))
    assert dest.read_bytes() == expected(3)


def test_local_failure_while_deleting_sources_then_retry(tmp_path, monkeypatch):
    sources = make_local(tmp_path, 4)
    dest = tmp_path / "ns.jsonl"
    real_remove = os.remove
    removed = []

    def failing_remove(path):
        if len(removed) == 2:
            raise OSError("remove failed")
        removed.append(path)
        real_remove(path)

    monkeypatch.setattr(compose_mod.os, "remove", failing_remove)
    with pytest.raises(OSError, match="remove failed"):
        compose(sources, str(dest))
    monkeypatch.undo()
    assert dest.read_bytes() == expected(4)  # complete: it was in place before any deletion
    assert sum(os.path.exists(s) for s in sources) == 2
    compose(sources, str(dest))  # finishes the clean-up, does not recompose from the remaining half
    assert dest.read_bytes() == expected(4)
    assert not any(os.path.exists(s) for s in sources)


def test_local_missing_source_without_destination_fails(tmp_path):
    sources = make_local(tmp_path, 2)
    os.remove(sources[1])
    with pytest.raises(FileNotFoundError, match="1 source"):
        compose(sources, str(tmp_path / "ns.jsonl"))
    assert not (tmp_path / "ns.jsonl").exists()


def test_mixed_or_bad_locations_are_refused(tmp_path):
    with pytest.raises(ComposeError, match="gs://"):
        compose([str(tmp_path / "a")], "gs://bucket/out")
    with pytest.raises(ComposeError):
        compose(["gs://bucket/a"], str(tmp_path / "out"))
    with pytest.raises(ComposeError, match="also one of the sources"):
        compose([str(tmp_path / "a")], str(tmp_path / "a"))
    with pytest.raises(TypeError):
        compose(str(tmp_path / "a"), str(tmp_path / "b"))


# ------------------------------------------------------------------------------------------- Cloud Storage


def make_objects(bucket, n: int, prefix: str = "shards/") -> list[str]:
    """Create n tiny objects in parallel; return their gs:// URLs in order."""
    names = [f"{prefix}shard-{i:05d}" for i in range(n)]

    def upload(i: int) -> None:
        bucket.blob(names[i]).upload_from_string(line(i))

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(upload, range(n)))
    return [f"gs://{bucket.name}/{name}" for name in names]


def object_names(bucket) -> list[str]:
    return sorted(b.name for b in bucket.client.list_blobs(bucket))


def test_fake_gcs_enforces_the_32_source_limit(fake_gcs):
    """Without this, passing the tests below would prove nothing about the limit."""
    from google.api_core.exceptions import BadRequest

    bucket = fake_gcs.new_bucket()
    make_objects(bucket, MAX_COMPOSE_SOURCES + 1)
    blobs = [bucket.blob(f"shards/shard-{i:05d}") for i in range(MAX_COMPOSE_SOURCES + 1)]
    bucket.blob("ok").compose(blobs[:MAX_COMPOSE_SOURCES])
    assert bucket.blob("ok").download_as_bytes() == expected(MAX_COMPOSE_SOURCES)
    with pytest.raises(BadRequest, match="32"):
        bucket.blob("too-many").compose(blobs)


@pytest.mark.parametrize("n", [0, 1, 32, 33, 100, 32 * 32 + 76])
def test_gcs_compose_tree(fake_gcs, n):
    bucket = fake_gcs.new_bucket()
    sources = make_objects(bucket, n)
    dest = f"gs://{bucket.name}/out/ns.jsonl"
    assert compose(sources, dest, client=fake_gcs.client) == dest
    assert bucket.blob("out/ns.jsonl").download_as_bytes() == expected(n)
    assert object_names(bucket) == ["out/ns.jsonl"]  # intermediates and sources deleted


def test_gcs_keep_sources_and_rerun_overwrites(fake_gcs):
    bucket = fake_gcs.new_bucket()
    sources = make_objects(bucket, 40)
    dest = f"gs://{bucket.name}/ns.jsonl"
    bucket.blob("ns.jsonl").upload_from_string(b"stale output\n")
    compose(sources, dest, delete_sources=False, client=fake_gcs.client)
    compose(sources, dest, delete_sources=False, client=fake_gcs.client)
    assert bucket.blob("ns.jsonl").download_as_bytes() == expected(40)
    assert len(object_names(bucket)) == 41


class Boom(RuntimeError):
    pass


def fail_on_call(monkeypatch, cls, method: str, nth: int) -> list[int]:
    """Make cls.method raise Boom on its nth call (thread-safe); return the call counter."""
    real = getattr(cls, method)
    lock = threading.Lock()
    calls = [0]

    def wrapper(self, *args, **kwargs):
        with lock:
            calls[0] += 1
            mine = calls[0]
        if mine == nth:
            raise Boom(f"injected failure in {method} call {nth}")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(cls, method, wrapper)
    return calls


# 100 sources: composes 1-4 are level 0 (32+32+32+4), 5 is the final one.
# 1100 sources: composes 1-35 are level 0, 36-37 level 1 (32+3), 38 the final one.
@pytest.mark.parametrize("n, nth", [(100, 2), (100, 5), (1100, 36)],
                         ids=["level0", "final", "level1-of-1100"])
def test_gcs_failure_in_the_tree_then_retry(fake_gcs, monkeypatch, n, nth):
    from google.cloud.storage import Blob

    bucket = fake_gcs.new_bucket()
    sources = make_objects(bucket, n)
    dest = f"gs://{bucket.name}/ns.jsonl"
    calls = fail_on_call(monkeypatch, Blob, "compose", nth)
    with pytest.raises(Boom):
        compose(sources, dest, client=fake_gcs.client)
    monkeypatch.undo()
    assert calls[0] >= nth
    assert bucket.get_blob("ns.jsonl") is None  # nothing visible before it is complete
    assert sum(1 for name in object_names(bucket) if name.startswith("shards/")) == n

    compose(sources, dest, client=fake_gcs.client)
    assert bucket.blob("ns.jsonl").download_as_bytes() == expected(n)
    assert object_names(bucket) == ["ns.jsonl"]


def test_gcs_failure_while_deleting_then_retry(fake_gcs, monkeypatch):
    from google.cloud.storage import Blob

    bucket = fake_gcs.new_bucket()
    sources = make_objects(bucket, 100)
    dest = f"gs://{bucket.name}/ns.jsonl"
    fail_on_call(monkeypatch, Blob, "delete", 20)
    with pytest.raises(Boom):
        compose(sources, dest, client=fake_gcs.client, max_workers=1)
    monkeypatch.undo()
    assert bucket.blob("ns.jsonl").download_as_bytes() == expected(100)
    assert len(object_names(bucket)) > 1  # clean-up was interrupted

    compose(sources, dest, client=fake_gcs.client)  # finishes the clean-up, never recomposes a half
    assert bucket.blob("ns.jsonl").download_as_bytes() == expected(100)
    assert object_names(bucket) == ["ns.jsonl"]
    compose(sources, dest, client=fake_gcs.client)  # and again: still the same single object
    assert object_names(bucket) == ["ns.jsonl"]


def test_gcs_missing_sources_and_a_foreign_destination_fail(fake_gcs):
    bucket = fake_gcs.new_bucket()
    sources = make_objects(bucket, 3)
    bucket.blob("ns.jsonl").upload_from_string(b"something else\n")
    bucket.blob("shards/shard-00001").delete()
    with pytest.raises(FileNotFoundError, match="not a composition of these sources"):
        compose(sources, f"gs://{bucket.name}/ns.jsonl", client=fake_gcs.client)
    assert bucket.blob("ns.jsonl").download_as_bytes() == b"something else\n"
    assert len(object_names(bucket)) == 3  # nothing deleted


def test_gcs_missing_source_without_destination_fails(fake_gcs):
    bucket = fake_gcs.new_bucket()
    sources = make_objects(bucket, 40)
    bucket.blob("shards/shard-00035").delete()
    with pytest.raises(FileNotFoundError, match="1 source"):
        compose(sources, f"gs://{bucket.name}/ns.jsonl", client=fake_gcs.client)
    assert bucket.get_blob("ns.jsonl") is None
    assert len(object_names(bucket)) == 39  # sources kept, nothing written


def test_gcs_sources_must_share_the_destination_bucket(fake_gcs):
    with pytest.raises(ComposeError, match="bucket"):
        compose(["gs://one/a", "gs://two/b"], "gs://one/out", client=fake_gcs.client)


def test_gcp_storage_emulator_compose_40_with_default_client(gcs_emulator_env):
    """The other emulator, through storage.Client() and STORAGE_EMULATOR_HOST (as Beam's runs use it)."""
    bucket = gcs_emulator_env.new_bucket()
    sources = make_objects(bucket, 40)
    dest = f"gs://{bucket.name}/out/ns.jsonl"
    compose(sources, dest)
    assert bucket.blob("out/ns.jsonl").download_as_bytes() == expected(40)
    assert object_names(bucket) == ["out/ns.jsonl"]
    compose(sources, dest)  # repeated after success: recognised as done (its metadata), unchanged
    assert bucket.blob("out/ns.jsonl").download_as_bytes() == expected(40)
    assert object_names(bucket) == ["out/ns.jsonl"]


def test_fake_credentials_need_no_network(fake_gcp_credentials):
    """The fixture the Beam-side tests use: credentials resolve at once, without any metadata probe."""
    import time

    import google.auth

    start = time.monotonic()
    credentials, project = google.auth.default()
    assert credentials.valid and project == TEST_PROJECT
    assert time.monotonic() - start < 5


def test_the_lease_on_gcs_is_a_compare_and_swap(fake_gcs, monkeypatch):
    """On Cloud Storage the lease is taken with if_generation_match: of two runs that saw no
    lease, or the same dead one, exactly one takes it (fake-gcs-server enforces the
    precondition, as Cloud Storage does). Issue 22."""
    from pipeline.sinks.files import lease

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.endpoint)
    monkeypatch.setattr(lease, "_gcs_blob", lambda path: fake_gcs.client.bucket(
        path[5:].split("/", 1)[0]).blob(path[5:].split("/", 1)[1]))
    out = f"gs://{fake_gcs.new_bucket().name}/out"
    held, version = lease.read_versioned(out, "job")
    assert held is None
    lease.take(out, "job", "first", local=False, expected=version)
    with pytest.raises(lease.LeaseTaken, match="run first"):
        lease.take(out, "job", "second", local=False, expected=version)
    seen, version = lease.read_versioned(out, "job")
    assert seen["run_id"] == "first" and version
    lease.take(out, "job", "third", local=False, expected=version)  # takes over what it saw
    with pytest.raises(lease.LeaseTaken, match="run third"):
        lease.take(out, "job", "fourth", local=False, expected=version)  # saw the old one
    lease.release(out, "job", "fourth")  # not its lease: kept
    assert lease.read_lease(out, "job")["run_id"] == "third"
    lease.release(out, "job", "third")
    assert lease.read_lease(out, "job") is None
