"""The `mailsync_ingest_mailboxes{state}` gauge: the mailboxes this worker holds, by sync state."""

from collections import Counter as Tally
from typing import get_args

from prometheus_client import CollectorRegistry, Gauge
from pymongo.asynchronous.collection import AsyncCollection

from mailsync_shared.periodic import Periodic
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxState

EVERY_SECONDS = 15.0


class MailboxStates:
    """Counts this worker's leased mailboxes by `status.state` every `EVERY_SECONDS`."""

    def __init__(
        self, mailboxes: AsyncCollection[Document], *, worker_id: str, registry: CollectorRegistry
    ) -> None:
        self._mailboxes = mailboxes
        self._worker_id = worker_id
        self._gauge = Gauge(
            "mailsync_ingest_mailboxes",
            "Mailboxes leased by this ingest worker, by sync state.",
            ["state"],
            registry=registry,
        )
        self._periodic = Periodic(self.count, EVERY_SECONDS, failure="mailbox states not counted")

    async def count(self) -> None:
        tally: Tally[str] = Tally()
        cursor = self._mailboxes.find(
            {"lease.owner": self._worker_id}, projection={"status.state": 1}
        )
        async for document in cursor:
            tally[str(document.get("status", {}).get("state", "connecting"))] += 1
        for state in get_args(MailboxState):
            self._gauge.labels(state).set(tally[state])

    async def start(self) -> None:
        await self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
