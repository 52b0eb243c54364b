"""Ingest's own metrics: `mailsync_ingest_mailboxes{state}`, the mailboxes this worker holds
by sync state, and `mailsync_ingest_sync_lag_seconds`, how far behind the mailboxes' new mail
their logging runs (a histogram over mailboxes, never a label per mailbox)."""

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import get_args

from prometheus_client import CollectorRegistry, Gauge, Histogram

from mailsync_shared.clock import utcnow
from mailsync_shared.periodic import Periodic
from mailsync_shared.storage.documents import MailboxState

EVERY_SECONDS = 15.0


class MailboxStates:
    """Counts this worker's leased mailboxes by `status.state` every `EVERY_SECONDS`, from the
    states its syncs recorded (no store read)."""

    def __init__(
        self, states: Callable[[], Mapping[str, int]], *, registry: CollectorRegistry
    ) -> None:
        self._states = states
        self._gauge = Gauge(
            "mailsync_ingest_mailboxes",
            "Mailboxes leased by this ingest worker, by sync state.",
            ["state"],
            registry=registry,
        )
        self._periodic = Periodic(self.count, EVERY_SECONDS, failure="mailbox states not counted")

    async def count(self) -> None:
        tally = self._states()
        for state in get_args(MailboxState):
            self._gauge.labels(state).set(tally.get(state, 0))

    async def start(self) -> None:
        await self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()


# From IDLE's push (a second or two) to a mailbox that was unreachable for hours.
LAG_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600)


class SyncLag:
    """Observed once per batch of new mail a mailbox logs: seconds from the newest message's
    INTERNALDATE (when its server received it) until the broker confirmed its publish.

    Backfilled mail is old by design and not observed. INTERNALDATE has whole seconds and the
    server's clock, so a lag below a second or two is clock noise; a negative one counts as 0.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._seconds = Histogram(
            "mailsync_ingest_sync_lag_seconds",
            "Per batch of new mail: the newest message's INTERNALDATE to its logging.",
            buckets=LAG_BUCKETS,
            registry=registry,
        )

    def observe(self, newest: datetime) -> None:
        received = newest if newest.tzinfo else newest.replace(tzinfo=UTC)
        self._seconds.observe(max(0.0, (utcnow() - received).total_seconds()))
