"""How long to keep trying a call that failed for a reason worth retrying.

One policy for every service the mapper calls (Datastore, BigQuery): jittered exponential
backoff from ``initial`` to ``maximum`` seconds between attempts, for at most ``deadline``
seconds in all, each attempt given at most ``rpc_timeout`` seconds (a service that went silent
counts as a transient failure, not as a hang). Only numbers here; ``pipeline.datastore.retry``
and the BigQuery sink apply them with google-api-core's ``Retry``.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    initial: float = 0.5
    maximum: float = 20.0
    multiplier: float = 2.0
    deadline: float = 300.0
    rpc_timeout: float = 60.0

    def with_deadline(self, deadline: float) -> "RetryPolicy":
        return dataclasses.replace(self, deadline=deadline)


#: The checks made before anything is read answer within seconds, not minutes.
LAUNCH_RETRY = RetryPolicy(initial=0.25, maximum=4.0, deadline=20.0, rpc_timeout=8.0)


def for_launch(policy: RetryPolicy) -> RetryPolicy:
    """The launch checks' policy under the run's: as short as ``LAUNCH_RETRY``, and never
    longer than what the user allowed the run (a deadline of 5 s is 5 s at launch too)."""
    return dataclasses.replace(LAUNCH_RETRY,
                               deadline=min(LAUNCH_RETRY.deadline, policy.deadline),
                               rpc_timeout=min(LAUNCH_RETRY.rpc_timeout, policy.rpc_timeout))
