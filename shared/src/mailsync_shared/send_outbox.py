"""The life of a send request, as single-document atomic writes (the api and send share it).

```
            ┌──────cancel──────▶ cancelled
            │
queued ──claim──▶ sending ──accepted, email.sent published──▶ sent (reported_at set)
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

Starting an attempt writes only its claim, which holds the attempt's `claimed_until` and
`data_started_at`: from then on the server may hold the message, so an attempt that vanished (a
crash) is recovered as one that may have delivered. The request keeps its stored state until the
attempt records how it ended, with the attempt's fields; meanwhile a request stored `queued`
whose next claim is a send claim is `sending` (`as_it_stands`). An attempt that failed before
DATA knows it did not deliver and clears `data_started_at` when it requeues the request.

The MongoDB-wire server may refuse a write while another holds its lock (FerretDB on SQLite
answers `database is locked`); such a write was not applied, so it is tried again
(`storage.ferretdb.retry_locked`) rather than leaving a request half-moved.

A request stays in `sending` while an attempt owns it (`claimed_until`); one found there after
the claim ran out was left by a crashed worker, or by an attempt whose connection dropped
mid-message (then `claimed_until`, stored, is when to look again), and is recovered by looking
for its Message-ID in the Sent folder before anything is sent again.

A `queued` request with `next_attempt_at`, and one released `sending` until `claimed_until`,
waits for the send service's scheduler, which hands it to the sender once that time has come:
the write that leaves it waiting also sets its timer (`send_timers`). Requests whose
`SendRequested` was lost, or whose attempt crashed after its claim, are found by the
scheduler's sweep of all requests.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pymongo.errors import DuplicateKeyError

from mailsync_shared.clock import utcnow
from mailsync_shared.ids import new_id, stable_id
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import SendRequestDocument
from mailsync_shared.storage.ferretdb import retry_locked
from mailsync_shared.storage.scoped import WorkspaceCollection, WorkspaceStore

CLAIMS = "send_claims"
# When a waiting request is due (`_id` = the request's): what the scheduler reads every pass.
TIMERS = "send_timers"
Insert = Callable[[WorkspaceCollection, Document], Awaitable[bool]]
# Sets fields on the document with an `_id`, perhaps together with other writers' updates.
SetFields = Callable[[WorkspaceCollection, str, dict[str, Any]], Awaitable[None]]


async def insert_one(collection: WorkspaceCollection, document: Document) -> bool:
    """Insert `document`; False if its `_id` is taken."""
    try:
        await retry_locked(lambda: collection.insert_one(document))
    except DuplicateKeyError:
        return False
    return True


def claim_id(request: SendRequestDocument) -> str:
    """The `_id` of the claim that moves `request` past its current attempt."""
    return f"{request.id}:{request.attempts + 1}"


async def _take(
    store: WorkspaceStore,
    request: SendRequestDocument,
    purpose: str,
    insert: Insert,
    fields: dict[str, Any] | None = None,
) -> tuple[bool, Document | None]:
    """Whether this caller won the claim, and else the claim that is held (if any)."""
    claims = store.collection(CLAIMS)
    claim = {
        "_id": claim_id(request),
        "request_id": request.id,
        "purpose": purpose,
        "token": new_id(),
        "at": utcnow(),
        **(fields or {}),
    }
    if await insert(claims, claim):
        return True, None
    held = await claims.find_one({"_id": claim["_id"]})
    return held is not None and held.get("token") == claim["token"], held


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
    won, _ = await _take(store, request, purpose, insert)
    return won


def _attempt_of(request: SendRequestDocument, claim: Document) -> SendRequestDocument:
    """`request` (stored `queued`) as the send attempt that holds `claim` has it: `sending`.

    A claim without an end of its own (written by an older version, whose attempt would have
    recorded `sending` at once) counts as run out."""
    until = claim.get("claimed_until", claim.get("at"))
    started = claim.get("data_started_at", claim.get("at"))
    return request.model_copy(
        update={
            "state": "sending",
            "attempts": request.attempts + 1,
            "claimed_until": until if isinstance(until, datetime) else None,
            "data_started_at": started if isinstance(started, datetime) else None,
            "next_attempt_at": None,
        }
    )


async def as_it_stands(store: WorkspaceStore, document: Document) -> SendRequestDocument:
    """The request as it stands: a stored `queued` request whose send attempt has begun is
    `sending` (the attempt keeps that in its claim until it records how it ended)."""
    request = SendRequestDocument.from_document(document)
    if request.state != "queued":
        return request
    held = await store.collection(CLAIMS).find_one({"_id": claim_id(request)})
    if held is None or held.get("purpose") != "send":
        return request
    return _attempt_of(request, held)


def send_request_id(workspace_id: str, requester: str, idempotency_key: str) -> str:
    """The `_id` of the request `requester` made with this idempotency key: a replay is one read.

    Keys are scoped to whoever used them (a person, or a system key), so one caller's key never
    names another's request."""
    return stable_id("send_request", workspace_id, requester, idempotency_key)


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
    set_fields: SetFields | None = None,
) -> SendRequestDocument | None:
    """Apply `changes` to the request, by `_id` alone; the request as written, or None if it is
    not there (not known when written through `set_fields`). The written request is worked out
    here rather than read back: its writer is the only one."""
    if set_fields is not None:
        await set_fields(store.send_requests, request.id, changes)
    else:
        update: dict[str, Any] = {"$set": changes}
        result = await retry_locked(
            lambda: store.send_requests.update_one({"_id": request.id}, update)
        )
        if result.matched_count == 0:
            return None
    written = {name: _as_stored(value) for name, value in changes.items()}
    return request.model_copy(update=written)


@dataclass(frozen=True)
class Claimed:
    """A send attempt that started: the request as it holds it (`sending`), and whether an
    earlier attempt left it `sending` (crashed, or ended not knowing the outcome), with the
    message's data perhaps started."""

    request: SendRequestDocument
    recovering: bool
    data_had_started: bool


class SendOutbox:
    """The send requests of one workspace and their state transitions."""

    def __init__(
        self,
        store: WorkspaceStore,
        *,
        claim_timeout: timedelta,
        insert: Insert = insert_one,
        set_fields: SetFields | None = None,
    ) -> None:
        self._store = store
        self._requests = store.send_requests
        self._claim_timeout = claim_timeout
        self._insert = insert
        self._set_fields = set_fields

    async def get(self, request_id: str) -> SendRequestDocument | None:
        document = await self._requests.find_one({"_id": request_id})
        return None if document is None else SendRequestDocument.from_document(document)

    async def claim(self, request: SendRequestDocument) -> Claimed | None:
        """Start an attempt: `queued`, or `sending` with an expired claim, -> `sending`.

        Only the claim is written: it holds the attempt's `claimed_until` and
        `data_started_at`, and the request keeps its stored state until the attempt records
        how it ended (with the attempt's fields). A claim found taken by a send attempt that
        ran out without recording anything (a crash) means the request was `sending` since:
        this attempt takes over from it, with the next claim.
        """
        now = utcnow()
        recovering = request.state == "sending"
        data_had_started = request.data_started_at is not None
        while True:
            if request.state == "sending" and request.claimed_until and request.claimed_until > now:
                return None
            if request.state not in ("queued", "sending"):
                return None
            attempt = {"claimed_until": now + self._claim_timeout, "data_started_at": now}
            won, held = await _take(self._store, request, "send", self._insert, attempt)
            if won:
                changes = {**attempt, "state": "sending", "next_attempt_at": None}
                claimed = request.model_copy(
                    update={
                        **{name: _as_stored(value) for name, value in changes.items()},
                        "attempts": request.attempts + 1,
                    }
                )
                return Claimed(claimed, recovering, data_had_started)
            if held is None or held.get("purpose") != "send":
                return None
            request = _attempt_of(request, held)
            recovering = True
            data_had_started = request.data_started_at is not None

    async def defer(
        self, request: SendRequestDocument, until: datetime, reason: str | None = None
    ) -> SendRequestDocument | None:
        """Leave a `queued` request to the scheduler until `until` (send_at, rate limit)."""
        changes: dict[str, Any] = {"next_attempt_at": until, "updated_at": utcnow()}
        if reason is not None:
            changes["error"] = reason
        deferred = await self._move(request, "queued", changes)
        if deferred is not None:
            await self._wake_at(request, until)
        return deferred

    async def mark_sent(
        self,
        request: SendRequestDocument,
        *,
        raw_id: str,
        sent_at: datetime,
        note: str | None = None,
    ) -> SendRequestDocument | None:
        """`sending` -> `sent`, accepted by the server at `sent_at`, with `email.sent` out
        already: this one write also sets `reported_at`. Written with other sends' records
        when the outbox was given `set_fields` (the claim's holder is the request's only
        writer, and the request was just read)."""
        now = utcnow()
        changes: dict[str, Any] = {
            "state": "sent",
            "raw_id": raw_id,
            "sent_at": sent_at,
            "claimed_until": None,
            "error": note,
            "reported_at": now,
            "updated_at": now,
        }
        return await self._move(request, "sending", changes, set_fields=self._set_fields)

    async def mark_reported(self, request: SendRequestDocument, note: str | None = None) -> None:
        """`email.sent` is out for a `sent` request; `note` keeps a problem that did not stop
        it (e.g. the Sent copy failed)."""
        now = utcnow()
        changes: dict[str, Any] = {"reported_at": now, "updated_at": now}
        if note is not None:
            changes["error"] = note
        await self._move(request, "sent", changes)

    async def requeue(
        self, request: SendRequestDocument, error: str, *, retry_at: datetime
    ) -> None:
        """The attempt failed before the server could have taken the message; retry later."""
        requeued = await self._move(
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
        if requeued is not None:
            await self._wake_at(request, retry_at)

    async def release(
        self, request: SendRequestDocument, error: str, *, retry_at: datetime
    ) -> None:
        """The attempt ended without knowing whether the server took the message.

        It stays `sending`, with a claim that runs out at `retry_at`; the next attempt then
        recovers it by looking in the Sent folder first.
        """
        released = await self._move(
            request,
            "sending",
            {
                "error": error,
                "claimed_until": retry_at,
                "updated_at": utcnow(),
            },
        )
        if released is not None:
            await self._wake_at(request, retry_at)

    async def _wake_at(self, request: SendRequestDocument, due: datetime) -> None:
        """Have the scheduler hand the request on at `due`, written after the request: a
        crash in between leaves it to the scheduler's sweep of every request."""
        timers = self._store.collection(TIMERS)
        change = {"$set": {"due": due}}
        await retry_locked(lambda: timers.update_one({"_id": request.id}, change, upsert=True))

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
        self,
        request: SendRequestDocument,
        from_state: str,
        changes: dict[str, Any],
        *,
        set_fields: SetFields | None = None,
    ) -> SendRequestDocument | None:
        """Apply `changes` if `request`, as the caller holds it, is in `from_state`.

        The caller holds the request's current claim (or, for `defer`, has just read it
        `queued`), so no one else moves it meanwhile. The attempt's own fields, which its
        claim alone holds until now, are written with the changes.
        """
        if request.state != from_state:
            return None
        held = {
            "state": request.state,
            "attempts": request.attempts,
            "claimed_until": request.claimed_until,
            "data_started_at": request.data_started_at,
            "next_attempt_at": request.next_attempt_at,
        }
        return await _write(self._store, request, {**held, **changes}, set_fields)
