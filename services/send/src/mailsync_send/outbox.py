"""The life of a send request, as single-document atomic writes.

```
queued ──claim──▶ sending ──accepted──▶ sent ──email.sent published──▶ (reported_at set)
  ▲                │  │ │
  └──transient─────┘  │ └──permanent, or attempts used up──▶ failed
                      └──outcome unknown, attempts used up──▶ unknown
```

Each transition names the state it leaves in its filter, so two workers holding the same
request cannot both move it: only the one whose write matched goes on. A request stays in
`sending` while an attempt owns it (`claimed_until`); one found there after the claim ran out
was left by a crashed worker, or by an attempt whose connection dropped mid-message, and is
recovered by looking for its Message-ID in the Sent folder before anything is sent again.
"""

from datetime import timedelta
from typing import Any

from mailsync_shared.clock import utcnow
from mailsync_shared.storage.documents import SendRequestDocument
from mailsync_shared.storage.scoped import WorkspaceStore


class Outbox:
    """The send requests of one workspace."""

    def __init__(self, store: WorkspaceStore, *, claim_timeout: timedelta) -> None:
        self._requests = store.send_requests
        self._claim_timeout = claim_timeout

    async def get(self, request_id: str) -> SendRequestDocument | None:
        document = await self._requests.find_one({"_id": request_id})
        return None if document is None else SendRequestDocument.from_document(document)

    async def claim(self, request: SendRequestDocument) -> SendRequestDocument | None:
        """Start an attempt: `queued`, or `sending` with an expired claim, -> `sending`."""
        now = utcnow()
        if request.state == "queued":
            filter_: dict[str, Any] = {"_id": request.id, "state": "queued"}
        else:
            filter_ = {
                "_id": request.id,
                "state": "sending",
                "$or": [{"claimed_until": None}, {"claimed_until": {"$lte": now}}],
            }
        document = await self._requests.find_one_and_update(
            filter_,
            {
                "$set": {
                    "state": "sending",
                    "claimed_until": now + self._claim_timeout,
                    "updated_at": now,
                },
                "$inc": {"attempts": 1},
            },
        )
        return None if document is None else SendRequestDocument.from_document(document)

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

    async def requeue(self, request: SendRequestDocument, error: str) -> None:
        """The attempt failed before the server could have taken the message."""
        await self._move(
            request,
            "sending",
            {"state": "queued", "error": error, "claimed_until": None, "updated_at": utcnow()},
        )

    async def release(self, request: SendRequestDocument, error: str) -> None:
        """The attempt ended without knowing whether the server took the message."""
        await self._move(
            request, "sending", {"error": error, "claimed_until": None, "updated_at": utcnow()}
        )

    async def finish_unsent(
        self, request: SendRequestDocument, state: str, error: str
    ) -> SendRequestDocument | None:
        """`failed` (never delivered) or `unknown` (may have been delivered); no more tries."""
        return await self._move(
            request,
            request.state,
            {"state": state, "error": error, "claimed_until": None, "updated_at": utcnow()},
        )

    async def _move(
        self, request: SendRequestDocument, from_state: str, changes: dict[str, Any]
    ) -> SendRequestDocument | None:
        document = await self._requests.find_one_and_update(
            {"_id": request.id, "state": from_state}, {"$set": changes}
        )
        return None if document is None else SendRequestDocument.from_document(document)
