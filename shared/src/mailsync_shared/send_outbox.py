"""The life of a send request, as single-document atomic writes (the api and send share it).

```
            ┌──────cancel──────▶ cancelled
            │
queued ──claim──▶ sending ──accepted──▶ sent ──email.sent published──▶ (reported_at set)
  ▲  ▲             │  │ │
  │  └─transient───┘  │ └──permanent, or attempts used up──▶ failed
  │  (next_attempt_at)│
  └─rate limit /      └──outcome unknown, attempts used up──▶ unknown
    send_at (deferred)
```

Who may start an attempt is decided by inserting a claim document whose `_id` is the request's
id and the attempt's number (`send_claims`): a unique `_id` is the one guarantee the store gives
under concurrency (FerretDB v1 applies a filtered `findAndModify` to every concurrent caller that
read the document before the first write, so a state filter alone lets two workers both win).
Sending and cancelling take the same claim, so a request is cancelled only if no attempt started.
Every later transition is made by the claim's holder and still names the state it leaves.

Starting an attempt also sets `data_started_at`: from then on the server may hold the message,
so an attempt that vanished (a crash) is recovered as one that may have delivered. An attempt
that failed before DATA knows it did not and clears it when it requeues the request.

The MongoDB-wire server may refuse a write while another holds its lock (FerretDB on SQLite
answers `database is locked`); such a write was not applied, so it is tried again
(`retry_locked`) rather than leaving a request half-moved.

A request stays in `sending` while an attempt owns it
(`claimed_until`); one found there after the claim ran out was left by a crashed worker, or by an
attempt whose connection dropped mid-message (then `claimed_until` is when to look again), and is
recovered by looking for its Message-ID in the Sent folder before anything is sent again.

A `queued` request with `next_attempt_at` waits for the send service's scheduler, which hands it
to the sender once that time has come; so do requests whose `SendRequested` was lost.
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pymongo.errors import DuplicateKeyError, OperationFailure

from mailsync_shared.clock import utcnow
from mailsync_shared.storage.documents import SendRequestDocument
from mailsync_shared.storage.scoped import WorkspaceStore

CLAIMS = "send_claims"
LOCKED_RETRIES = 8

T = TypeVar("T")


def is_locked(error: OperationFailure) -> bool:
    """The store refused the write because another held its lock; nothing was applied."""
    text = str(error)
    return "SQLITE_BUSY" in text or "database is locked" in text


async def retry_locked(write: Callable[[], Awaitable[T]]) -> T:
    """Run `write`, trying again while the store answers that it is locked."""
    for attempt in range(LOCKED_RETRIES):
        try:
            return await write()
        except OperationFailure as error:
            if not is_locked(error) or attempt == LOCKED_RETRIES - 1:
                raise
        await asyncio.sleep(0.02 * 2**attempt)
    raise AssertionError("unreachable")


async def take_claim(store: WorkspaceStore, request: SendRequestDocument, purpose: str) -> bool:
    """Whether this caller is the only one to move `request` past its current attempt."""
    claims = store.collection(CLAIMS)
    claim = {
        "_id": f"{request.id}:{request.attempts + 1}",
        "request_id": request.id,
        "purpose": purpose,
        "at": utcnow(),
    }
    try:
        await retry_locked(lambda: claims.insert_one(claim))
    except DuplicateKeyError:
        return False
    return True


async def cancel(store: WorkspaceStore, request_id: str) -> SendRequestDocument | None:
    """Cancel a request that is still `queued`; None when there is no such queued request."""
    current = await store.send_requests.find_one({"_id": request_id, "state": "queued"})
    if current is None:
        return None
    if not await take_claim(store, SendRequestDocument.from_document(current), "cancel"):
        return None
    now = utcnow()
    document = await store.send_requests.find_one_and_update(
        {"_id": request_id, "state": "queued"},
        {
            "$set": {
                "state": "cancelled",
                "cancelled_at": now,
                "next_attempt_at": None,
                "updated_at": now,
            }
        },
    )
    return None if document is None else SendRequestDocument.from_document(document)


class SendOutbox:
    """The send requests of one workspace and their state transitions."""

    def __init__(self, store: WorkspaceStore, *, claim_timeout: timedelta) -> None:
        self._store = store
        self._requests = store.send_requests
        self._claim_timeout = claim_timeout

    async def get(self, request_id: str) -> SendRequestDocument | None:
        document = await self._requests.find_one({"_id": request_id})
        return None if document is None else SendRequestDocument.from_document(document)

    async def claim(self, request: SendRequestDocument) -> SendRequestDocument | None:
        """Start an attempt: `queued`, or `sending` with an expired claim, -> `sending`."""
        now = utcnow()
        if request.state == "sending" and request.claimed_until and request.claimed_until > now:
            return None
        if request.state not in ("queued", "sending"):
            return None
        if not await take_claim(self._store, request, "send"):
            return None
        filter_: dict[str, Any] = {
            "_id": request.id,
            "state": request.state,
            "attempts": request.attempts,
        }
        update = {
            "$set": {
                "state": "sending",
                "claimed_until": now + self._claim_timeout,
                "data_started_at": now,
                "next_attempt_at": None,
                "updated_at": now,
            },
            "$inc": {"attempts": 1},
        }
        document = await retry_locked(lambda: self._requests.find_one_and_update(filter_, update))
        return None if document is None else SendRequestDocument.from_document(document)

    async def defer(
        self, request: SendRequestDocument, until: datetime, reason: str | None = None
    ) -> SendRequestDocument | None:
        """Leave a `queued` request to the scheduler until `until` (send_at, rate limit)."""
        changes: dict[str, Any] = {
            "next_attempt_at": until,
            "dispatched_at": None,
            "updated_at": utcnow(),
        }
        if reason is not None:
            changes["error"] = reason
        return await self._move(request, "queued", changes)

    async def mark_data_started(self, request: SendRequestDocument) -> None:
        """The message data is about to go out: from now on the server may have it."""
        await self._requests.update_one(
            {"_id": request.id, "state": "sending"}, {"$set": {"data_started_at": utcnow()}}
        )

    async def mark_sent(
        self, request: SendRequestDocument, *, raw_id: str, note: str | None = None
    ) -> SendRequestDocument | None:
        now = utcnow()
        return await self._move(
            request,
            "sending",
            {
                "state": "sent",
                "raw_id": raw_id,
                "sent_at": now,
                "claimed_until": None,
                "error": note,
                "updated_at": now,
            },
        )

    async def mark_reported(self, request: SendRequestDocument) -> None:
        now = utcnow()
        filter_ = {"_id": request.id, "state": "sent"}
        update = {"$set": {"reported_at": now, "updated_at": now}}
        await retry_locked(lambda: self._requests.update_one(filter_, update))

    async def note_error(self, request: SendRequestDocument, error: str) -> None:
        """Keep a problem that did not stop the request (e.g. the Sent copy failed)."""
        await self._move(request, request.state, {"error": error, "updated_at": utcnow()})

    async def requeue(
        self, request: SendRequestDocument, error: str, *, retry_at: datetime
    ) -> None:
        """The attempt failed before the server could have taken the message; retry later."""
        await self._move(
            request,
            "sending",
            {
                "state": "queued",
                "error": error,
                "claimed_until": None,
                "data_started_at": None,
                "next_attempt_at": retry_at,
                "dispatched_at": None,
                "updated_at": utcnow(),
            },
        )

    async def release(
        self, request: SendRequestDocument, error: str, *, retry_at: datetime
    ) -> None:
        """The attempt ended without knowing whether the server took the message.

        It stays `sending`, with a claim that runs out at `retry_at`; the next attempt then
        recovers it by looking in the Sent folder first.
        """
        await self._move(
            request,
            "sending",
            {
                "error": error,
                "claimed_until": retry_at,
                "dispatched_at": None,
                "updated_at": utcnow(),
            },
        )

    async def forget_data_start(self, request: SendRequestDocument) -> None:
        """A recovered attempt found the message was not delivered: it may send afresh."""
        await self._requests.update_one(
            {"_id": request.id, "state": "sending"}, {"$set": {"data_started_at": None}}
        )

    async def finish_unsent(
        self, request: SendRequestDocument, state: str, error: str
    ) -> SendRequestDocument | None:
        """`failed` (never delivered) or `unknown` (may have been delivered); no more tries."""
        return await self._move(
            request,
            request.state,
            {
                "state": state,
                "error": error,
                "claimed_until": None,
                "next_attempt_at": None,
                "updated_at": utcnow(),
            },
        )

    async def mark_dispatched(
        self, request_id: str, *, due: datetime | None
    ) -> SendRequestDocument | None:
        """The scheduler handed the request to the sender; a due `next_attempt_at` is used up."""
        now = utcnow()
        filter_: dict[str, Any] = {"_id": request_id}
        changes: dict[str, Any] = {"dispatched_at": now}
        if due is not None:
            filter_["next_attempt_at"] = due
            changes["next_attempt_at"] = None
        document = await self._requests.find_one_and_update(filter_, {"$set": changes})
        return None if document is None else SendRequestDocument.from_document(document)

    async def _move(
        self, request: SendRequestDocument, from_state: str, changes: dict[str, Any]
    ) -> SendRequestDocument | None:
        filter_ = {"_id": request.id, "state": from_state}
        document = await retry_locked(
            lambda: self._requests.find_one_and_update(filter_, {"$set": changes})
        )
        return None if document is None else SendRequestDocument.from_document(document)
