"""Handing send requests to the sender when their time has come, and when they look lost.

The sender never sleeps on a request: a scheduled send (`send_at`), a retry after a transient
failure and a send held back by the mailbox's rate limit all wait in the store with a
`next_attempt_at`, and an attempt that ended not knowing the outcome leaves its request
`sending` until `claimed_until`. Each of these writes also sets a timer (`send_timers`, keyed by
the request's `_id`), and this loop publishes `SendRequested` for the requests whose timer is
due, every `interval`: it reads the small timer collection and each due request by `_id`, never
the whole of `send_requests` (which the store would decode document by document). A timer whose
request has ended is removed.

Every `redispatch_after / 2` a sweep of all requests also hands on the ones that should have
moved but did not for `redispatch_after` (a lost `SendRequested`, an attempt that crashed after
its claim, a report that never went out) and due ones without a timer (a crash between the
request's write and its timer's). Publishing twice is harmless: the sender's claim is atomic.

The scheduler never updates a request: an update at the moment the sender moves it could undo
the sender's write (the store rewrites whole documents). What it handed on, and when, goes in a
record of its own per request (`send_dispatches`, keyed by the request's `_id`). A request is
handed on again only once it has changed since (deferred anew, released, re-claimed) or after
`redispatch_after`.
"""

import functools
import logging
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailsync_send.sender import SOURCE
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.outbound import SendRequest, SendRequested
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.periodic import Periodic
from mailsync_shared.send_outbox import TIMERS
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import SendRequestDocument
from mailsync_shared.storage.ferretdb import retry_locked
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore

DISPATCHES = "send_dispatches"
# Requests looked at per pass; the store reads the whole collection for the query anyway.
FOUND_LIMIT = 1000
WAITING = {"_id": 1, "workspace_id": 1, "state": 1, "next_attempt_at": 1, "claimed_until": 1}

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
        self._redispatch_after = redispatch_after
        self._claim_timeout = claim_timeout
        self._periodic = Periodic(self.dispatch_due, interval, failure="send scheduler pass failed")
        self._sweep_every = redispatch_after / 2
        self._next_sweep: datetime | None = None
        # What this process handed on lately, by request id: its version and when.
        self._handed: dict[str, tuple[str, datetime]] = {}

    async def dispatch_due(self) -> int:
        """Publish every send request that is due or stalled now; count them."""
        now = utcnow()
        stale_before = now - self._redispatch_after
        self._handed = {key: seen for key, seen in self._handed.items() if seen[1] > stale_before}
        found = await self._due_by_timer(now)
        if self._next_sweep is None or now >= self._next_sweep:
            self._next_sweep = now + self._sweep_every
            timed = {str(holder["_id"]) for holder in found}
            swept = await self._system.send_requests_to_dispatch(
                now, stale_before, limit=FOUND_LIMIT
            )
            found += [holder for holder in swept if str(holder["_id"]) not in timed]
        dispatched = 0
        for holder in found:
            store = WorkspaceStore(self._db, str(holder["workspace_id"]))
            if await self._dispatch(store, holder, stale_before):
                dispatched += 1
        if dispatched:
            logger.info("send requests handed on", extra={"count": dispatched})
        return dispatched

    async def _due_by_timer(self, now: datetime) -> list[Document]:
        """The requests whose timer is due and that are still waiting for it, as stored."""
        due: list[Document] = []
        for timer in await self._system.send_timers_due(now, limit=FOUND_LIMIT):
            store = WorkspaceStore(self._db, str(timer["workspace_id"]))
            request_id = str(timer["_id"])
            document = await store.send_requests.find_one({"_id": request_id}, projection=WAITING)
            state = None if document is None else document.get("state")
            if document is None or state not in ("queued", "sending"):
                await retry_locked(
                    functools.partial(store.collection(TIMERS).delete_many, {"_id": request_id})
                )
                continue
            at = document.get("next_attempt_at" if state == "queued" else "claimed_until")
            if isinstance(at, datetime) and at <= now:
                due.append(document)
        return due

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

    async def start(self) -> None:
        await self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
