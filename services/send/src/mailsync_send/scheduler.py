"""Handing send requests to the sender when their time has come, and when they look lost.

The sender never sleeps on a request: a scheduled send (`send_at`), a retry after a transient
failure and a send held back by the mailbox's rate limit all wait in the store with a
`next_attempt_at`. This loop publishes `SendRequested` for those that are due, for `sending`
requests whose claim ran out (a crashed worker, or an attempt to look at again), and for
requests that should have moved but did not for a while (a lost `SendRequested`, a report that
never went out). Publishing twice is harmless: the sender's claim is atomic.

The scheduler never updates a request: an update at the moment the sender moves it could undo
the sender's write (the store rewrites whole documents). What it handed on, and when, goes in a
record of its own per request (`send_dispatches`, keyed by the request's `_id`). A request is
handed on again only once it has changed since (deferred anew, released, re-claimed) or after
`redispatch_after`.
"""

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailsync_send.sender import SOURCE
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.outbound import SendRequest, SendRequested
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.send_outbox import retry_locked
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import SendRequestDocument
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore

DISPATCHES = "send_dispatches"
# Requests looked at per pass; the store reads the whole collection for the query anyway.
FOUND_LIMIT = 1000

logger = logging.getLogger(__name__)


def version(state: str, due: datetime | None, attempts: int | None = None) -> str:
    """What a request looked like when handed on; a move of it (deferred anew, released,
    claimed again) changes this."""
    moment = due.isoformat() if due is not None else ""
    return f"{state}:{'' if attempts is None else attempts}:{moment}"


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
        # What this process handed on lately, by request id: its version and when.
        self._handed: dict[str, tuple[str, datetime]] = {}

    async def dispatch_due(self) -> int:
        """Publish every send request that is due or stalled now; count them."""
        now = utcnow()
        stale_before = now - self._redispatch_after
        self._handed = {key: seen for key, seen in self._handed.items() if seen[1] > stale_before}
        found = await self._system.send_requests_to_dispatch(now, stale_before, limit=FOUND_LIMIT)
        dispatched = 0
        for holder in found:
            store = WorkspaceStore(self._db, str(holder["workspace_id"]))
            if await self._dispatch(store, holder, stale_before):
                dispatched += 1
        if dispatched:
            logger.info("send requests handed on", extra={"count": dispatched})
        return dispatched

    async def _dispatch(
        self, store: WorkspaceStore, holder: Document, stale_before: datetime
    ) -> bool:
        """Hand the request on unless it was handed on, as it is now, not long ago."""
        request_id = str(holder["_id"])
        state = str(holder.get("state"))
        if state == "sending":
            # Its claim's end and attempt tell a released attempt from the one handed on.
            document = await store.send_requests.find_one({"_id": request_id})
            if document is None:
                return False
            request = SendRequestDocument.from_document(document)
            seen = version(request.state, request.claimed_until, request.attempts)
        else:
            due = holder.get("next_attempt_at")
            seen = version(state, due if isinstance(due, datetime) else None)
        handed = self._handed.get(request_id)
        if handed is not None and handed[0] == seen:
            return False
        records = store.collection(DISPATCHES)
        record = await records.find_one({"_id": request_id})
        if record is not None and record.get("version") == seen:
            at = record.get("at")
            if isinstance(at, datetime) and at > stale_before:
                self._handed[request_id] = (seen, at)
                return False
        # Recorded before it is published: a crash in between is made good after
        # `redispatch_after`, and the sender never races this write.
        at = utcnow()
        change: dict[str, Any] = {"$set": {"version": seen, "at": at}}
        await retry_locked(lambda: records.update_one({"_id": request_id}, change, upsert=True))
        self._handed[request_id] = (seen, at)
        await self._publisher.publish(
            SendRequested.create(
                source=SOURCE,
                workspace_id=store.workspace_id,
                data=SendRequest(send_request_id=request_id),
                subject=request_id,
            )
        )
        return True

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
