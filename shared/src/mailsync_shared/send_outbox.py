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

The store answers a filter from its `_id` index only when it is exactly `{"_id": x}` (any
other filter reads the whole collection), and it rewrites a whole document on every update, so
two updates of one request at the same moment keep only one. Hence every read and write here
names the request by `_id` alone, the state a transition leaves is checked on the document just
read or held by the caller, and only one writer updates a request at a time: the holder of its
current claim. The api writes a request once, when it inserts it; the scheduler keeps what it
handed on beside the request (`send_dispatches`, keyed by its `_id`).

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
from mailsync_shared.ids import new_id, stable_id
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import SendRequestDocument
from mailsync_shared.storage.scoped import WorkspaceCollection, WorkspaceStore

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


Insert = Callable[[WorkspaceCollection, Document], Awaitable[bool]]


async def insert_one(collection: WorkspaceCollection, document: Document) -> bool:
    """Insert `document`; False if its `_id` is taken."""
    try:
        await retry_locked(lambda: collection.insert_one(document))
    except DuplicateKeyError:
        return False
    return True


async def take_claim(
    store: WorkspaceStore,
    request: SendRequestDocument,
    purpose: str,
    insert: Insert = insert_one,
) -> bool:
    """Whether this caller is the only one to move `request` past its current attempt.

    The claim carries a token of its own, so a write tried again after an answer that did not
    say whether it was applied still knows its own claim from another's.
    """
    claims = store.collection(CLAIMS)
    claim = {
        "_id": f"{request.id}:{request.attempts + 1}",
        "request_id": request.id,
        "purpose": purpose,
        "token": new_id(),
        "at": utcnow(),
    }
    if await insert(claims, claim):
        return True
    held = await claims.find_one({"_id": claim["_id"]})
    return held is not None and held.get("token") == claim["token"]


def send_request_id(workspace_id: str, idempotency_key: str) -> str:
    """The `_id` of the workspace's request with this idempotency key: a replay is one read."""
    return stable_id("send_request", workspace_id, idempotency_key)


async def cancel(store: WorkspaceStore, request_id: str) -> SendRequestDocument | None:
    """Cancel a request that is still `queued`; None when there is no such queued request."""
    current = await store.send_requests.find_one({"_id": request_id})
    if current is None or current.get("state") != "queued":
        return None
    request = SendRequestDocument.from_document(current)
    if not await take_claim(store, request, "cancel"):
        return None
    now = utcnow()
    return await _write(
        store,
        request,
        {"state": "cancelled", "cancelled_at": now, "next_attempt_at": None, "updated_at": now},
    )


def _as_stored(value: Any) -> Any:
    """A time cut to the milliseconds the store keeps, so the copy in hand matches a read."""
    if isinstance(value, datetime):
        return value.replace(microsecond=value.microsecond // 1000 * 1000)
    return value


async def _write(
    store: WorkspaceStore,
    request: SendRequestDocument,
    changes: dict[str, Any],
    *,
    new_attempt: bool = False,
) -> SendRequestDocument | None:
    """Apply `changes` to the request, by `_id` alone; the request as written, or None if it is
    not there. The written request is worked out here rather than read back: its writer is the
    only one."""
    update: dict[str, Any] = {"$set": changes}
    if new_attempt:
        update["$inc"] = {"attempts": 1}
    result = await retry_locked(lambda: store.send_requests.update_one({"_id": request.id}, update))
    if result.matched_count == 0:
        return None
    written = {name: _as_stored(value) for name, value in changes.items()}
    if new_attempt:
        written["attempts"] = request.attempts + 1
    return request.model_copy(update=written)


class SendOutbox:
    """The send requests of one workspace and their state transitions."""

    def __init__(
        self, store: WorkspaceStore, *, claim_timeout: timedelta, insert: Insert = insert_one
    ) -> None:
        self._store = store
        self._requests = store.send_requests
        self._claim_timeout = claim_timeout
        self._insert = insert

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
        if not await take_claim(self._store, request, "send", self._insert):
            return None
        changes = {
            "state": "sending",
            "claimed_until": now + self._claim_timeout,
            "data_started_at": now,
            "next_attempt_at": None,
            "updated_at": now,
        }
        return await _write(self._store, request, changes, new_attempt=True)

    async def defer(
        self, request: SendRequestDocument, until: datetime, reason: str | None = None
    ) -> SendRequestDocument | None:
        """Leave a `queued` request to the scheduler until `until` (send_at, rate limit)."""
        changes: dict[str, Any] = {"next_attempt_at": until, "updated_at": utcnow()}
        if reason is not None:
            changes["error"] = reason
        return await self._move(request, "queued", changes)

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
        await self._move(request, "sent", {"reported_at": now, "updated_at": now})

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
                "updated_at": utcnow(),
            },
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

    async def _move(
        self, request: SendRequestDocument, from_state: str, changes: dict[str, Any]
    ) -> SendRequestDocument | None:
        """Apply `changes` if `request`, as the caller holds it, is in `from_state`.

        The caller holds the request's current claim (or, for `defer`, has just read it
        `queued`), so no one else moves it meanwhile.
        """
        if request.state != from_state:
            return None
        return await _write(self._store, request, changes)
