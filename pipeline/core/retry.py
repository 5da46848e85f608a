"""How long to keep trying a call that failed for a reason worth retrying.

One policy for every service the mapper calls (Datastore, BigQuery): jittered exponential
backoff from ``initial`` to ``maximum`` seconds between attempts, for at most ``deadline``
seconds in all. Only numbers here; ``pipeline.datastore.retry`` and the BigQuery sink apply
them with google-api-core's ``Retry``.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    initial: float = 0.5
    maximum: float = 20.0
    multiplier: float = 2.0
    deadline: float = 60.0

    def with_deadline(self, deadline: float) -> "RetryPolicy":
        return dataclasses.replace(self, deadline=deadline)
