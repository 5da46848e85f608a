"""Retrying Datastore calls: one mechanism for every call the mapper makes.

Transient errors (the service busy, a call timed out) are retried under a ``RetryPolicy``
(``pipeline.core.retry``) with google-api-core's own ``Retry``: a unary call (listing, sampling,
a bound search) with ``call``, a stream of entities that resumes where it stopped with
``stream``. Each retry is logged with what was being done and the wait. When the deadline is
reached the last error is raised as it was, so the caller can explain it.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable, Iterator, Optional, TypeVar

from google.api_core import exceptions as gexc
from google.api_core.retry import (
    exponential_sleep_generator,
    retry_target,
    retry_target_stream,
)

from pipeline.core.retry import RetryPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Errors worth retrying: the service was busy or the call timed out.
TRANSIENT = (gexc.ServiceUnavailable, gexc.DeadlineExceeded, gexc.InternalServerError,
             gexc.Aborted, gexc.TooManyRequests, gexc.ResourceExhausted, gexc.GatewayTimeout,
             gexc.BadGateway)


def is_transient(err: BaseException) -> bool:
    return isinstance(err, TRANSIENT)


def _last_error(errors: list, reason, timeout) -> tuple:
    """Out of time (or not retryable): raise the last error itself, not a RetryError, so the
    caller explains what failed."""
    return errors[-1], getattr(errors[-1], "__cause__", None)


def _on_error(what: str, policy: RetryPolicy, on_retry: Optional[Callable[[Exception], None]]):
    attempts = [0]

    def on_error(err: Exception) -> None:
        attempts[0] += 1
        log.warning("%s: transient error (%s: %s); retry %d (for up to %.0f s)", what,
                    type(err).__name__, err, attempts[0], policy.deadline)
        if on_retry is not None:
            on_retry(err)

    return on_error


def _sleeps(policy: RetryPolicy) -> Iterator[float]:
    return exponential_sleep_generator(policy.initial, policy.maximum, policy.multiplier)


def call(fn: Callable[[], T], what: str, policy: RetryPolicy = RetryPolicy(),
         on_retry: Optional[Callable[[Exception], None]] = None) -> T:
    """``fn()``, retrying transient errors under ``policy``."""
    return retry_target(fn, is_transient, _sleeps(policy), timeout=policy.deadline,
                        on_error=_on_error(what, policy, on_retry), exception_factory=_last_error)


def stream(gen: Callable[[], Iterable[T]], what: str, policy: RetryPolicy = RetryPolicy(),
           on_retry: Optional[Callable[[Exception], None]] = None) -> Iterator[T]:
    """The items of ``gen()``; on a transient error ``gen()`` is called again, so it must
    resume where the items it already gave stop (the reader keeps that position)."""
    return retry_target_stream(gen, is_transient, _sleeps(policy), timeout=policy.deadline,
                               on_error=_on_error(what, policy, on_retry),
                               exception_factory=_last_error)
