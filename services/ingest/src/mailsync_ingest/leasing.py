"""Mailbox leases: each connected mailbox is synced by exactly one worker at a time.

A lease is `{owner, until}` on the mailbox document. Claiming is one atomic
`find_one_and_update` on a mailbox whose lease is absent, expired or already ours; renewing and
releasing match on the owner, so a worker can only extend or drop its own leases. A worker that
dies stops renewing, and another one takes its mailboxes once the leases expire.

Workers of one pool (same workspaces) split its mailboxes evenly: each records a heartbeat in
`ingest_workers`, holds at most its fair share (connected mailboxes / live workers, rounded
up) and hands the excess back, so adding a replica spreads the mailboxes within a lease round.
"""

import json
import math
from collections.abc import Collection
from datetime import timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection

from mailsync_shared.clock import utcnow
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument

CONNECTED = {"status.state": {"$ne": "disconnected"}}


def pool_scope(workspaces: Collection[str], excluded: Collection[str]) -> Document:
    """The mailboxes a worker pool may lease: of the given workspaces (all when none are
    given), minus the excluded ones."""
    condition: Document = {}
    if workspaces:
        condition["$in"] = sorted(set(workspaces) - set(excluded))
    elif excluded:
        condition["$nin"] = sorted(excluded)
    return {"workspace_id": condition} if condition else {}


def fair_share(mailboxes: int, workers: int) -> int:
    """How many mailboxes one of `workers` live workers should hold (at least one)."""
    return max(1, math.ceil(mailboxes / max(1, workers)))


class PoolRoster:
    """The live workers of one pool, from their heartbeats."""

    def __init__(
        self,
        workers: AsyncCollection[Document],
        *,
        worker_id: str,
        pool: Document,
        ttl_seconds: float,
    ) -> None:
        self._workers = workers
        self._worker_id = worker_id
        self._pool = json.dumps(pool, sort_keys=True)
        self._ttl = timedelta(seconds=ttl_seconds)

    async def heartbeat(self) -> None:
        await self._workers.update_one(
            {"_id": self._worker_id},
            {"$set": {"pool": self._pool, "seen_at": utcnow()}},
            upsert=True,
        )

    async def alive(self) -> int:
        return await self._workers.count_documents(
            {"pool": self._pool, "seen_at": {"$gt": utcnow() - self._ttl}}
        )

    async def leave(self) -> None:
        await self._workers.delete_one({"_id": self._worker_id})


class LeaseBook:
    def __init__(
        self,
        mailboxes: AsyncCollection[Document],
        *,
        worker_id: str,
        lease_seconds: float,
        workspaces: Collection[str] = (),
        exclude_workspaces: Collection[str] = (),
    ) -> None:
        self._mailboxes = mailboxes
        self.worker_id = worker_id
        self._duration = timedelta(seconds=lease_seconds)
        self._scope = pool_scope(workspaces, exclude_workspaces)

    @property
    def scope(self) -> Document:
        return dict(self._scope)

    async def connected(self) -> int:
        """Connected mailboxes in this pool's scope."""
        return await self._mailboxes.count_documents({**self._scope, **CONNECTED})

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
