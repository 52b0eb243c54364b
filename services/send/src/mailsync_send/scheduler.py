"""Handing send requests to the sender when their time has come, and when they look lost.

The sender never sleeps on a request: a scheduled send (`send_at`), a retry after a transient
failure and a send held back by the mailbox's rate limit all wait in the store with a
`next_attempt_at`. This loop publishes `SendRequested` for those that are due, for `sending`
requests whose claim ran out (a crashed worker, or an attempt to look at again), and for
requests that should have moved but did not for a while (a lost `SendRequested`, a report that
never went out). Publishing twice is harmless: the sender's claim is atomic.
"""

import asyncio
import contextlib
import logging
from datetime import timedelta

from pymongo.asynchronous.database import AsyncDatabase

from mailsync_send.sender import SOURCE
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.outbound import SendRequest, SendRequested
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.send_outbox import SendOutbox
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore

logger = logging.getLogger(__name__)


class Scheduler:
    """Publishes due and stalled send requests every `interval` seconds while running."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        publisher: EventPublisher,
        *,
        interval: float,
        redispatch_after: timedelta,
        claim_timeout: timedelta,
    ) -> None:
        self._db = db
        self._system = SystemCollections(db)
        self._publisher = publisher
        self._interval = interval
        self._redispatch_after = redispatch_after
        self._claim_timeout = claim_timeout
        self._task: asyncio.Task[None] | None = None

    async def dispatch_due(self) -> int:
        """Publish every send request that is due or stalled now; count them."""
        now = utcnow()
        found = await self._system.send_requests_to_dispatch(now, now - self._redispatch_after)
        dispatched = 0
        for holder in found:
            workspace_id = str(holder["workspace_id"])
            request_id = str(holder["_id"])
            due = holder.get("next_attempt_at") if holder.get("state") == "queued" else None
            store = WorkspaceStore(self._db, workspace_id)
            event = SendRequested.create(
                source=SOURCE,
                workspace_id=workspace_id,
                data=SendRequest(send_request_id=request_id),
                subject=request_id,
            )
            # Published before it is marked: a crash in between publishes it twice, never zero.
            await self._publisher.publish(event)
            outbox = SendOutbox(store, claim_timeout=self._claim_timeout)
            await outbox.mark_dispatched(request_id, due=due)
            dispatched += 1
        if dispatched:
            logger.info("send requests handed on", extra={"count": dispatched})
        return dispatched

    async def _run(self) -> None:
        while True:
            try:
                await self.dispatch_due()
            except Exception:
                logger.exception("send scheduler pass failed")
            await asyncio.sleep(self._interval)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
