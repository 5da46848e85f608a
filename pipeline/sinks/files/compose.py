"""Concatenate finished shards into one file, on local disk or Cloud Storage, atomically and idempotently.

Local paths: the sources are streamed, in order, into a hidden temp file next to the destination
(`.<name>.compose-tmp`), which is fsynced and then renamed over the destination (`os.replace`, atomic).

`gs://` URLs: `google-cloud-storage`'s `Blob.compose`, which takes at most 32 sources per call. More sources
are composed in a tree: groups of up to 32 are composed in parallel into intermediate objects under
`<destination>.compose-tmp/<level>/<index>` (deterministic names, so a retry overwrites them), and the final
call writes the destination in one request (atomic in Cloud Storage). Intermediates are deleted afterwards.
Cloud Storage composes only objects of the destination's bucket.

Both: nothing appears under the destination until it is complete, and sources are deleted (when asked)
only after it is in place. So a call that failed part-way can simply be repeated: if every source is still
there, the destination is composed again (overwritten); if the destination exists and sources are missing,
an earlier call completed and only its clean-up (deleting the remaining sources and temp files) is
finished. On Cloud Storage the destination records a digest of its source list (object metadata
`compose-sources-sha256`), and that case is only accepted when the digest matches, so a destination from
another composition is never mistaken for this one.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait

from pipeline.errors import MapperError

__all__ = ["compose", "ComposeError", "MAX_COMPOSE_SOURCES"]

MAX_COMPOSE_SOURCES = 32
"""Cloud Storage's limit on the number of sources of one compose request."""

_TMP_SUFFIX = ".compose-tmp"
_DIGEST_KEY = "compose-sources-sha256"
_COPY_BUFFER = 1 << 20


class ComposeError(MapperError, ValueError):
    """Sources and destination that cannot be composed as given."""


def compose(sources: Sequence[str], destination: str, *, delete_sources: bool = True,
            client=None, max_workers: int = 10) -> str:
    """Concatenate `sources` in the given order into `destination` (all local paths, or all gs://bucket/... URLs) and return destination.

    Nothing is visible under `destination` until it is complete; calling it again after a failure part-way
    (or after success) yields the same final file, never a duplicated one.

    No sources make an empty destination. `client` (a `google.cloud.storage.Client`, for gs:// only)
    defaults to `storage.Client()`, which honours `STORAGE_EMULATOR_HOST`. `max_workers` bounds the
    parallel Cloud Storage requests (10 = the default HTTP connection pool size of the client).
    """
    if isinstance(sources, str):
        raise TypeError("compose() takes a sequence of source paths, not a single string")
    sources = list(sources)
    remote = [s.startswith("gs://") for s in sources]
    if destination.startswith("gs://"):
        if not all(remote):
            raise ComposeError(f"cannot compose local files into {destination}: all sources must be gs:// "
                               f"URLs, got {sources[remote.index(False)]!r}")
        return _compose_gcs(sources, destination, delete_sources=delete_sources, client=client,
                            max_workers=max_workers)
    if "://" in destination:
        raise ComposeError(f"unsupported destination {destination!r}: use a local path or gs://bucket/name")
    if any(remote):
        raise ComposeError(f"cannot compose gs:// objects into local file {destination}: got "
                           f"{sources[remote.index(True)]!r}")
    return _compose_local(sources, destination, delete_sources=delete_sources)


# ----------------------------------------------------------------------------------------------- local


def _copy_into(source: str, out) -> None:
    """Append the content of the file `source` to the open binary file `out`."""
    with open(source, "rb") as src:
        shutil.copyfileobj(src, out, _COPY_BUFFER)


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _compose_local(sources: list[str], destination: str, *, delete_sources: bool) -> str:
    dest = os.path.abspath(destination)
    srcs = [os.path.abspath(s) for s in sources]
    if dest in srcs:
        raise ComposeError(f"destination {destination} is also one of the sources")
    directory = os.path.dirname(dest)
    tmp = os.path.join(directory, "." + os.path.basename(dest) + _TMP_SUFFIX)
    if tmp in srcs:
        raise ComposeError(f"source {tmp} is this composition's temp file")
    unique = list(dict.fromkeys(srcs))

    missing = [s for s in unique if not os.path.exists(s)]
    if missing:
        if os.path.exists(dest):
            # Sources are deleted only once the destination is in place: an earlier call completed.
            if delete_sources:
                for s in unique:
                    _remove_quietly(s)
            _remove_quietly(tmp)
            return destination
        raise FileNotFoundError(f"cannot compose {destination}: {len(missing)} source(s) missing, "
                                f"e.g. {missing[0]}")

    os.makedirs(directory, exist_ok=True)
    if len(srcs) == 1 and delete_sources:
        try:
            os.replace(srcs[0], dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        else:
            _fsync_dir(directory)
            _remove_quietly(tmp)
            return destination

    try:
        with open(tmp, "wb") as out:
            for s in srcs:
                _copy_into(s, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    except BaseException:
        _remove_quietly(tmp)
        raise
    _fsync_dir(directory)
    if delete_sources:
        for s in unique:
            _remove_quietly(s)
    return destination


# ----------------------------------------------------------------------------------------- Cloud Storage


def _split_gs(url: str) -> tuple[str, str]:
    bucket, _, name = url[len("gs://"):].partition("/")
    if not bucket or not name:
        raise ComposeError(f"not a gs://bucket/object URL: {url!r}")
    return bucket, name


def _digest(names: Sequence[str]) -> str:
    h = hashlib.sha256()
    for n in names:
        h.update(n.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def _run_all(pool: ThreadPoolExecutor, fn, items) -> None:
    """fn(item) for every item in parallel; wait for all of them, then raise the first failure if any.

    (Unlike `pool.map`, nothing is still running when this raises, so clean-up after it sees everything.)
    """
    futures = [pool.submit(fn, item) for item in items]
    wait(futures)
    for future in futures:
        future.result()


def _compose_gcs(sources: list[str], destination: str, *, delete_sources: bool, client,
                 max_workers: int) -> str:
    from google.api_core import exceptions as gexc
    from google.cloud import storage
    from google.cloud.storage.retry import DEFAULT_RETRY

    dest_bucket, dest_name = _split_gs(destination)
    parsed = [_split_gs(s) for s in sources]
    foreign = sorted({b for b, _ in parsed if b != dest_bucket})
    if foreign:
        raise ComposeError(
            f"cannot compose into {destination}: Cloud Storage composes only objects of the destination's "
            f"bucket ({dest_bucket}), but sources are in {', '.join(foreign)}")
    names = [n for _, n in parsed]
    tmp_prefix = dest_name + _TMP_SUFFIX + "/"
    if dest_name in names:
        raise ComposeError(f"destination {destination} is also one of the sources")
    if any(n.startswith(tmp_prefix) for n in names):
        raise ComposeError(f"sources of {destination} must not be under its temp prefix {tmp_prefix}")
    unique = list(dict.fromkeys(names))
    digest = _digest(names)

    client = client or storage.Client()
    bucket = client.bucket(dest_bucket)

    def delete(name: str) -> None:
        try:
            bucket.blob(name).delete(retry=DEFAULT_RETRY)
        except gexc.NotFound:
            pass

    def compose_one(target: str, parts: Sequence[str], metadata: dict | None = None) -> None:
        blob = bucket.blob(target)
        if metadata:
            blob.metadata = metadata
        # Overwriting a deterministic name with the same content is idempotent: safe to retry.
        blob.compose([bucket.blob(p) for p in parts], retry=DEFAULT_RETRY)

    def clean_up(pool: ThreadPoolExecutor) -> None:
        temps = [b.name for b in client.list_blobs(bucket, prefix=tmp_prefix)]
        _run_all(pool, delete, temps)
        if delete_sources:
            _run_all(pool, delete, unique)

    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        # Check the sources first (in parallel): a missing one gets a clear error before anything is
        # written, and is how a repeated call recognises that an earlier one completed. (Checking is also
        # needed for fake-gcs-server, which answers a compose with a missing source by a 500, retried for
        # minutes, where Cloud Storage answers 404.)
        present = [False] * len(unique)

        def check(i: int) -> None:
            present[i] = bucket.blob(unique[i]).exists(retry=DEFAULT_RETRY)

        _run_all(pool, check, range(len(unique)))
        if not all(present):
            # Sources are deleted only after the destination is in place: if the destination is this very
            # composition (same source list), an earlier call completed; finish its clean-up.
            dest_blob = bucket.get_blob(dest_name, retry=DEFAULT_RETRY)
            recorded = (dest_blob.metadata or {}).get(_DIGEST_KEY) if dest_blob is not None else None
            if recorded == digest:
                clean_up(pool)
                return destination
            missing = [n for n, p in zip(unique, present) if not p]
            raise FileNotFoundError(
                f"cannot compose {destination}: {len(missing)} source(s) missing, e.g. "
                f"gs://{dest_bucket}/{missing[0]}"
                + ("" if dest_blob is None else
                   "; the existing destination is not a composition of these sources"))

        if not names:
            blob = bucket.blob(dest_name)
            blob.metadata = {_DIGEST_KEY: digest}
            blob.upload_from_string(b"", retry=DEFAULT_RETRY)
        else:
            current, level = names, 0
            while len(current) > MAX_COMPOSE_SOURCES:
                following: list[str] = []
                jobs: list[tuple[str, list[str]]] = []
                for index in range(0, len(current), MAX_COMPOSE_SOURCES):
                    group = current[index:index + MAX_COMPOSE_SOURCES]
                    if len(group) == 1:
                        following.append(group[0])  # nothing to compose: pass it up as is
                        continue
                    target = f"{tmp_prefix}{level}/{index // MAX_COMPOSE_SOURCES}"
                    following.append(target)
                    jobs.append((target, group))
                _run_all(pool, lambda job: compose_one(*job), jobs)
                current, level = following, level + 1
            compose_one(dest_name, current, {_DIGEST_KEY: digest})
        clean_up(pool)
    return destination
