"""What send adds to the service's /metrics: how requests end and how long SMTP takes."""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

Outcome = Literal["sent", "retried", "failed", "unknown"]

# From a kept session's quick 250 to a slow server's whole timeout.
SMTP_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class SendMetrics:
    """`mailsync_send_outcomes_total{outcome}` and `mailsync_send_smtp_seconds{result}`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._outcomes = Counter(
            "mailsync_send_outcomes_total",
            "Send attempts by how they ended: sent (the server answered 250), retried "
            "(a transient failure, tried again later), failed, or unknown (may have gone out).",
            ["outcome"],
            registry=registry,
        )
        self._smtp = Histogram(
            "mailsync_send_smtp_seconds",
            "Time of one SMTP relay, from taking a session to the server's answer to the data.",
            ["result"],
            buckets=SMTP_BUCKETS,
            registry=registry,
        )
        for outcome in ("sent", "retried", "failed", "unknown"):
            self._outcomes.labels(outcome)

    def count(self, outcome: Outcome) -> None:
        self._outcomes.labels(outcome).inc()

    @asynccontextmanager
    async def smtp_timer(self) -> AsyncIterator[None]:
        """Times the block as `accepted`, or as `failed` when it raises."""
        started = time.perf_counter()
        result = "failed"
        try:
            yield
            result = "accepted"
        finally:
            self._smtp.labels(result).observe(time.perf_counter() - started)
