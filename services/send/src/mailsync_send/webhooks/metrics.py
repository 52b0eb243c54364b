"""What webhooks add to the send service's /metrics: how tries end and how long receivers take.

No label names a workspace, a subscription or a URL: the log per subscription is in the api.
"""

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

Outcome = Literal["delivered", "retrying", "failed"]

# From a receiver on the same network to one that lets the request time out.
REQUEST_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class WebhookMetrics:
    """`mailsync_webhook_attempts_total{outcome}` and `mailsync_webhook_request_seconds{answer}`."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._attempts = Counter(
            "mailsync_webhook_attempts_total",
            "Webhook tries by how they ended: delivered (a 2xx answer), retrying (another "
            "answer or none; tried again later), failed (given up after the retry window).",
            ["outcome"],
            registry=registry,
        )
        self._requests = Histogram(
            "mailsync_webhook_request_seconds",
            "Time of one webhook request, by whether the receiver answered (any status).",
            ["answer"],
            buckets=REQUEST_BUCKETS,
            registry=registry,
        )
        for outcome in ("delivered", "retrying", "failed"):
            self._attempts.labels(outcome)

    def attempted(self, outcome: Outcome, seconds: float, *, answered: bool) -> None:
        self._attempts.labels(outcome).inc()
        self._requests.labels("answered" if answered else "none").observe(seconds)
