"""How long to keep trying a call that failed for a reason worth retrying.

One policy for every service the mapper calls (Datastore, BigQuery): jittered exponential
backoff from ``initial`` to ``maximum`` seconds between attempts, for at most ``deadline``
seconds in all, each attempt given at most ``rpc_timeout`` seconds (a service that went silent
counts as a transient failure, not as a hang). Only numbers here; ``pipeline.datastore.retry``
and the BigQuery sink apply them with google-api-core's ``Retry``.
"""
from __future__ import annotations

import dataclasses
import socket
from typing import Callable, Optional


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    initial: float = 0.5
    maximum: float = 20.0
    multiplier: float = 2.0
    deadline: float = 300.0
    rpc_timeout: float = 60.0

    def with_deadline(self, deadline: float) -> "RetryPolicy":
        return dataclasses.replace(self, deadline=deadline)


#: The checks made before anything is read answer within seconds, not minutes (until the
#: service has answered once: see ``LaunchRetry``).
LAUNCH_RETRY = RetryPolicy(initial=0.25, maximum=4.0, deadline=20.0, rpc_timeout=8.0)


def for_launch(policy: RetryPolicy) -> RetryPolicy:
    """The launch checks' policy under the run's: as short as ``LAUNCH_RETRY``, and never
    longer than what the user allowed the run (a deadline of 5 s is 5 s at launch too, and
    no one call outlasts it)."""
    deadline = min(LAUNCH_RETRY.deadline, policy.deadline)
    return dataclasses.replace(LAUNCH_RETRY, deadline=deadline,
                               rpc_timeout=min(LAUNCH_RETRY.rpc_timeout, policy.rpc_timeout,
                                               deadline))


#: What a refused connection or an unknown host says, in gRPC's UNAVAILABLE details ("failed to
#: connect to all addresses; ... Connection refused", "errors resolving HOST: ... Domain name not
#: found", "DNS resolution failed") and in requests' / urllib3's messages ("[Errno 111] Connection
#: refused", "Failed to resolve 'HOST' ([Errno -2] Name or service not known)"). A reset, a
#: closed socket or a time-out says none of these.
_REFUSED = ("connection refused",)
_UNKNOWN_HOST = ("errors resolving", "dns resolution failed", "domain name not found",
                 "name or service not known", "nodename nor servname", "failed to resolve",
                 "no address associated with hostname", "temporary failure in name resolution",
                 "address lookup failed", "getaddrinfo")
#: gRPC's words for a peer that does not speak HTTP/2 (a web server, another service's port).
_NOT_GRPC = ("failed parsing http/2", "expected settings frame")


def misconfigured(err: BaseException) -> Optional[str]:
    """``"connection refused"``, ``"unknown host"`` or, for a gRPC call answered by something
    that does not speak gRPC, ``"something else answers there (not gRPC)"`` when ``err`` (or an
    error it wraps: its cause, context, arguments, ``reason``, ``errors``) says so; None for any
    other failure."""
    todo, seen = [err], set()
    while todo:
        e = todo.pop()
        if not isinstance(e, BaseException) or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, ConnectionRefusedError):
            return "connection refused"
        if isinstance(e, socket.gaierror):
            return "unknown host"
        text = str(e).lower()
        if any(m in text for m in _REFUSED):
            return "connection refused"
        if any(m in text for m in _UNKNOWN_HOST):
            return "unknown host"
        if any(m in text for m in _NOT_GRPC):
            return "something else answers there (not gRPC)"
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None), *e.args,
                 *(getattr(e, "errors", None) or ())]
    return None


class LaunchRetry:
    """One service's retries during one launch (its checks run one after another).

    Until the service has answered once in this launch, a refused connection or an unknown host
    is a misconfiguration: not retried at all (one line at once); any other transient error gets
    ``for_launch``'s short policy. Once it has answered, the address is right: a reset, a
    time-out or a refusal is a transient fault of a service that works, and gets the run's own
    deadline (``--datastore_deadline``, ``--bigquery_deadline``), with the launch's short backoff
    and per-call timeout."""

    def __init__(self, run_policy: RetryPolicy):
        self.run_policy = run_policy
        self.answered = False

    def policy(self) -> RetryPolicy:
        """The policy of a call starting now."""
        short = for_launch(self.run_policy)
        return dataclasses.replace(short, deadline=self.run_policy.deadline) if self.answered \
            else short

    def retries(self, transient: Callable[[BaseException], bool]
                ) -> Callable[[BaseException], bool]:
        """The retry predicate: ``transient``, without a misconfiguration before an answer."""
        return lambda err: transient(err) and (self.answered or misconfigured(err) is None)

    def refused(self, err: BaseException) -> Optional[str]:
        """Why ``err`` ends the launch at once (a misconfiguration before any answer), or None."""
        return None if self.answered else misconfigured(err)
