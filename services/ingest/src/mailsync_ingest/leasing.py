"""Mailbox leases: each connected mailbox is synced by exactly one worker at a time.

A lease is `{owner, until}` on the mailbox document. Claiming is one atomic
`find_one_and_update` on a mailbox whose lease is absent, expired or already ours; renewing and
releasing match on the owner, so a worker can only extend or drop its own leases. A worker that
dies stops renewing, and another one takes its mailboxes once the leases expire.
"""

from collections.abc import Collection
from datetime import timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from mailsync_shared.clock import utcnow
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument

CONNECTED = {"status.state": {"$ne": "disconnected"}}


class LeaseBook:
    def __init__(
        self,
        mailboxes: AsyncCollection[Document],
        *,
        worker_id: str,
        lease_seconds: float,
        workspaces: Collection[str] = (),
    ) -> None:
        self._mailboxes = mailboxes
        self.worker_id = worker_id
        self._duration = timedelta(seconds=lease_seconds)
        self._scope: Document = {"workspace_id": {"$in": list(workspaces)}} if workspaces else {}

    def _lease(self) -> Document:
        return {"owner": self.worker_id, "until": utcnow() + self._duration}

    async def claim(self, held: Collection[str]) -> MailboxDocument | None:
        """Lease one more mailbox that nobody holds, or None when there is none."""
        claimable: Document = {
            **self._scope,
            **CONNECTED,
            "_id": {"$nin": list(held)},
            "$or": [
                {"lease": None},
                {"lease.until": {"$lt": utcnow()}},
                {"lease.owner": self.worker_id},
            ],
        }
        document = await self._mailboxes.find_one_and_update(
            claimable,
            {"$set": {"lease": self._lease()}},
            return_document=ReturnDocument.AFTER,
        )
        return None if document is None else MailboxDocument.from_document(document)

    async def renew(self, mailbox_ids: Collection[str]) -> set[str]:
        """Extend our leases; returns the mailboxes still ours and still connected."""
        if not mailbox_ids:
            return set()
        ours: Document = {"_id": {"$in": list(mailbox_ids)}, "lease.owner": self.worker_id}
        await self._mailboxes.update_many(
            {**ours, **CONNECTED}, {"$set": {"lease.until": self._lease()["until"]}}
        )
        still: list[Any] = await self._mailboxes.distinct(
            "_id", {**ours, **CONNECTED, "lease.until": {"$gt": utcnow()}}
        )
        return {str(mailbox_id) for mailbox_id in still}

    async def release(self, mailbox_id: str) -> None:
        await self._mailboxes.update_one(
            {"_id": mailbox_id, "lease.owner": self.worker_id}, {"$set": {"lease": None}}
        )
