"""Retrying Datastore calls: one mechanism for every call the mapper makes.

Transient errors (the service busy or unreachable, a call that timed out or went silent, and
the client library's own ``RetryError``) are retried under a ``RetryPolicy``
(``pipeline.core.retry``, ``--datastore_deadline``) with google-api-core's own retry helpers: a
unary call (listing, sampling, a bound search) with ``call``, a stream of entities that resumes
where it stopped with ``stream``. The client's own retry is switched off on every call
(``CALL_OPTIONS``), so retries are never nested inside its 60 s default, and each attempt has
the policy's timeout. Each retry is logged with what was being done, where, and the wait.

Past the deadline the run ends with one line naming the service, the call and how long it was
tried (``DatastoreUnavailable``); an error that is not transient is raised as it was, for the
caller to explain.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Iterable, Iterator, Optional, TypeVar

from google.api_core import exceptions as gexc
from google.api_core.retry import (
    Retry,
    RetryFailureReason,
    exponential_sleep_generator,
    retry_target,
    retry_target_stream,
)

from pipeline.core.retry import LaunchRetry, RetryPolicy
from pipeline.errors import MapperError

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Errors worth retrying: the service was busy, unreachable or silent, or the client gave up
#: on its own retries (RetryError).
TRANSIENT = (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError,
             gexc.Aborted, gexc.TooManyRequests, gexc.ResourceExhausted, gexc.GatewayTimeout,
             gexc.BadGateway, gexc.RetryError)

#: Passed as ``retry=`` on every client call: one attempt, no retry of the client's own.
NO_CLIENT_RETRY = Retry(predicate=lambda exc: False, timeout=None)


class DatastoreUnavailable(MapperError):
    """Datastore kept failing transiently (or stayed silent) for the whole deadline."""


class DatastoreUnreachable(MapperError):
    """At launch, before Datastore answered once: the connection was refused or the host is
    unknown (a misconfiguration: not retried)."""


def is_transient(err: BaseException) -> bool:
    return isinstance(err, TRANSIENT)


def call_options(policy: RetryPolicy) -> dict:
    """The keyword arguments every client call gets: no retry of its own, the policy's timeout."""
    return {"retry": NO_CLIENT_RETRY, "timeout": policy.rpc_timeout}


def _short(err: BaseException) -> str:
    text = " ".join(str(getattr(err, "message", None) or err).split())
    return f"{type(err).__name__}: {text[:300]}"


class _Attempts:
    """Logs each retry and builds the final error; one per retried call."""

    def __init__(self, what: str, where: str, policy: RetryPolicy,
                 on_retry: Optional[Callable[[Exception], None]], level: int = logging.WARNING):
        self.what, self.where, self.policy, self.on_retry = what, where, policy, on_retry
        self.level = level
        self.started = time.monotonic()
        self.count = 0

    def sleeps(self) -> Iterator[float]:
        p = self.policy
        for delay in exponential_sleep_generator(p.initial, p.maximum, p.multiplier):
            left = p.deadline - (time.monotonic() - self.started)
            if delay < left:  # the retry helper gives up when the next wait passes the deadline
                log.log(self.level, "%s (%s): transient error (%s); retry %d in %.1f s (giving up %.0f s "
                            "after the first error)", self.what, self.where, self._last, self.count,
                            delay, p.deadline)
            yield delay

    def on_error(self, err: Exception) -> None:
        self.count += 1
        self._last = _short(err)
        if self.on_retry is not None:
            self.on_retry(err)

    def final_error(self, errors: list, reason, timeout) -> tuple:
        last = errors[-1] if errors else None
        if reason == RetryFailureReason.TIMEOUT:
            elapsed = time.monotonic() - self.started
            return DatastoreUnavailable(
                f"{self.what}: {self.where} kept failing for {elapsed:.0f} s ({len(errors)} "
                f"attempt{'' if len(errors) == 1 else 's'}; the deadline is {self.policy.deadline:g} s, --datastore_deadline); "
                f"last error: {_short(last)}"), None
        return last, getattr(last, "__cause__", None)


def call(fn: Callable[[], T], what: str, policy: RetryPolicy = RetryPolicy(),
         on_retry: Optional[Callable[[Exception], None]] = None, where: str = "Datastore",
         predicate: Callable[[BaseException], bool] = is_transient,
         level: int = logging.WARNING) -> T:
    """``fn()``, retrying transient errors (``predicate``) under ``policy``; each retry is
    logged at ``level``."""
    a = _Attempts(what, where, policy, on_retry, level)
    return retry_target(fn, predicate, a.sleeps(), timeout=policy.deadline,
                        on_error=a.on_error, exception_factory=a.final_error)


def launch_call(fn: Callable[[RetryPolicy], T], what: str, launch: LaunchRetry,
                where: str = "Datastore") -> T:
    """A launch check's call, ``fn(policy)``, under ``launch`` (``LaunchRetry``): before
    Datastore has answered once in this launch, a refused connection or an unknown host raises
    ``DatastoreUnreachable`` at once and other transient errors are retried for the launch's
    short deadline; once it has answered, for the run's own (``--datastore_deadline``).

    Until it has answered, its retries are logged at DEBUG: an address where no Datastore
    answers gets one line on the terminal, the ``error:`` line that says how long and how often
    it was tried (``DATASTORE_MAPPER_LOG_LEVEL=DEBUG`` shows each attempt). Once it has
    answered, a fault of a service that works is retried for minutes, and each retry says so
    (a WARNING)."""
    policy = launch.policy()
    level = logging.WARNING if launch.answered else logging.DEBUG
    try:
        result = call(lambda: fn(policy), what, policy, where=where,
                      predicate=launch.retries(is_transient), level=level)
    except gexc.GoogleAPICallError as e:
        why = launch.refused(e) if is_transient(e) else None
        if why is not None:
            raise DatastoreUnreachable(f"{what}: {where}: {why} ({_short(e)})") from None
        if not is_transient(e):
            launch.answered = True  # an answer, if an error (the caller explains it)
        raise
    launch.answered = True
    return result


def stream(gen: Callable[[], Iterable[T]], what: str, policy: RetryPolicy = RetryPolicy(),
           on_retry: Optional[Callable[[Exception], None]] = None,
           where: str = "Datastore") -> Iterator[T]:
    """The items of ``gen()``; on a transient error ``gen()`` is called again, so it must
    resume where the items it already gave stop (the reader keeps that position)."""
    a = _Attempts(what, where, policy, on_retry)
    return retry_target_stream(gen, is_transient, a.sleeps(), timeout=policy.deadline,
                               on_error=a.on_error, exception_factory=a.final_error)
