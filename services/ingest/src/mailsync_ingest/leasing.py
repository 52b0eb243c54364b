"""Mailbox leases: each connected mailbox is synced by exactly one worker at a time.

Who holds a mailbox is decided in `mailbox_lease_terms`: one document per term,
`_id = <mailbox id>:<term>`, naming its owner. A term lasts while it is not released and its
owner's heartbeat in `ingest_workers` (`leases_until`) is in the future: renewing every lease
of a worker is one write of that heartbeat, whatever the number of mailboxes. A worker may
claim a mailbox only when its latest term has lapsed (released, or the owner's heartbeat
expired), and claims by inserting the next term; the unique `_id` lets exactly one of the
workers that saw the same lapsed term win (one unordered insert decides a whole batch). A
conditional update cannot decide it, because FerretDB v1 does not apply a filtered update
atomically (several concurrent `find_one_and_update` calls on the same document can all
match). Renewing also checks that no later term exists, so a worker that stalled past its
heartbeat learns it lost the mailboxes others took meanwhile. A worker that dies stops
beating, and other workers win the next terms once its heartbeat has expired.

The mailbox's `lease` field names the holder (owner and term) for the sync's guarded writes
and for status; it is written when a term is won and cleared on release, on resync and on
disconnect, never by renewal. Renewal does not write mailbox or term documents at all, so it
cannot race the sync's checkpoint and status writes or the api's resync (FerretDB over SQLite
rewrites whole documents and loses one of two concurrent updates), costs the store the same at
ten mailboxes as at a thousand (an `update_many` over a thousand term documents took FerretDB
24 s), and a mailbox whose document changed under it (resync, disconnect, erase) only drops
out of the kept set: the others are kept all the same.

Workers of one pool (same workspaces) split its mailboxes evenly: each records a heartbeat in
`ingest_workers`, holds at most its fair share (connected mailboxes / live workers, rounded
up) and hands the excess back, so adding a replica spreads the mailboxes within a lease round.
"""

import asyncio
import json
import math
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from mailsync_shared.clock import utcnow
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import OUT_OF_SERVICE, MailboxDocument

# A mailbox awaiting approval of its address is not synced either.
CONNECTED = {"status.state": {"$nin": list(OUT_OF_SERVICE)}}
DUPLICATE_KEY = 11000


def pool_scope(workspaces: Collection[str], excluded: Collection[str]) -> Document:
    """The mailboxes a worker pool may lease: of the given workspaces (all when none are
    given), minus the excluded ones."""
    condition: Document = {}
    if workspaces:
        condition["$in"] = sorted(set(workspaces) - set(excluded))
    elif excluded:
        condition["$nin"] = sorted(excluded)
    return {"workspace_id": condition} if condition else {}


def in_pool(workspace_id: str, workspaces: Collection[str], excluded: Collection[str]) -> bool:
    """Whether a pool (as `pool_scope` gives it) leases the mailboxes of `workspace_id`."""
    if workspace_id in excluded:
        return False
    return not workspaces or workspace_id in workspaces


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
        terms: AsyncCollection[Document],
        workers: AsyncCollection[Document],
        *,
        worker_id: str,
        lease_seconds: float,
        workspaces: Collection[str] = (),
        exclude_workspaces: Collection[str] = (),
    ) -> None:
        self._mailboxes = mailboxes
        self._terms = terms
        self._workers = workers
        self._held_terms: dict[str, int] = {}
        self.worker_id = worker_id
        self._duration = timedelta(seconds=lease_seconds)
        self._beat_until: datetime | None = None
        self._scope = pool_scope(workspaces, exclude_workspaces)

    @property
    def scope(self) -> Document:
        return dict(self._scope)

    async def connected(self) -> int:
        """Connected mailboxes in this pool's scope."""
        return await self._mailboxes.count_documents({**self._scope, **CONNECTED})

    def _until(self) -> datetime:
        return utcnow() + self._duration

    async def _beat(self) -> None:
        """Extend every term this worker holds: one write."""
        until = self._until()
        await self._workers.update_one(
            {"_id": self.worker_id}, {"$set": {"leases_until": until}}, upsert=True
        )
        self._beat_until = until

    async def _live_owners(self) -> set[str]:
        owners: list[Any] = await self._workers.distinct("_id", {"leases_until": {"$gt": utcnow()}})
        return {str(owner) for owner in owners}

    async def _held_elsewhere(self, live: set[str]) -> list[str]:
        """Mailboxes with a term that lasts for another worker."""
        others = sorted(live - {self.worker_id})
        if not others:
            return []
        held: list[Any] = await self._terms.distinct(
            "mailbox_id", {"owner": {"$in": others}, "released": {"$ne": True}}
        )
        return [str(mailbox_id) for mailbox_id in held]

    async def claim(self, held: Collection[str]) -> MailboxDocument | None:
        """Lease one more mailbox that nobody holds, or None when there is none."""
        claimed = await self.claim_many(held, 1)
        return claimed[0] if claimed else None

    async def claim_many(self, held: Collection[str], limit: int) -> list[MailboxDocument]:
        """Lease up to `limit` mailboxes that nobody holds (fewer when others win some).

        A batch costs a few round trips whatever its size: the latest terms are read in one
        query and the next ones inserted in one unordered insert, whose duplicate keys are the
        terms other workers won first; only the mailboxes' `lease` fields are written one
        document at a time (concurrently).
        """
        if limit <= 0:
            return []
        if self._beat_until is None or self._beat_until - utcnow() < self._duration / 2:
            await self._beat()  # a term won now must last beyond the next renewal
        live = await self._live_owners()
        busy = {*held, *await self._held_elsewhere(live)}
        claimable: Document = {**self._scope, **CONNECTED, "_id": {"$nin": sorted(busy)}}
        candidates = [
            str(document["_id"])
            async for document in self._mailboxes.find(
                claimable, projection={"_id": 1}, limit=limit
            )
        ]
        if not candidates:
            return []
        terms = await self._win_terms(candidates, live)
        if not terms:
            return []
        self._held_terms.update(terms)
        until = self._until()
        # By `_id` alone: the store's index serves it (FerretDB reads the whole collection for
        # any other filter). A mailbox disconnected meanwhile is caught by the sync's first
        # guarded write, which stops it and releases the lease.
        await asyncio.gather(
            *(
                self._mailboxes.update_one(
                    {"_id": mailbox_id},
                    {"$set": {"lease": {"owner": self.worker_id, "until": until, "term": term}}},
                )
                for mailbox_id, term in terms.items()
            )
        )
        documents = self._mailboxes.find({"_id": {"$in": list(terms)}, **CONNECTED})
        return [MailboxDocument.from_document(document) async for document in documents]

    async def _win_terms(self, mailbox_ids: list[str], live: set[str]) -> dict[str, int]:
        """The terms we hold for these mailboxes: still ours, or the next ones we won."""
        latest: dict[str, Document] = {}
        async for document in self._terms.find({"mailbox_id": {"$in": mailbox_ids}}):
            known = latest.get(str(document["mailbox_id"]))
            if known is None or int(document["term"]) > int(known["term"]):
                latest[str(document["mailbox_id"])] = document
        ours: dict[str, int] = {}
        wanted: dict[str, int] = {}
        for mailbox_id in mailbox_ids:
            term = latest.get(mailbox_id)
            if term is not None and not term.get("released") and term["owner"] in live:
                if term["owner"] == self.worker_id:
                    ours[mailbox_id] = int(term["term"])
                continue
            wanted[mailbox_id] = 1 if term is None else int(term["term"]) + 1
        if wanted:
            inserts = [
                {
                    "_id": f"{mailbox_id}:{term}",
                    "mailbox_id": mailbox_id,
                    "term": term,
                    "owner": self.worker_id,
                    "released": False,
                }
                for mailbox_id, term in wanted.items()
            ]
            lost: set[str] = set()
            try:
                await self._terms.insert_many(inserts, ordered=False)
            except BulkWriteError as error:
                for failure in error.details.get("writeErrors", []):
                    if failure.get("code") != DUPLICATE_KEY:
                        raise
                    lost.add(str(inserts[int(failure["index"])]["mailbox_id"]))
            won = {m: t for m, t in wanted.items() if m not in lost}
            # Earlier terms only ever matter to their stalled owners, whose writes match nothing.
            earlier = [f"{m}:{t - 1}" for m, t in won.items() if t > 1]
            if earlier:
                await self._terms.delete_many({"_id": {"$in": earlier}})
            ours.update(won)
        return ours

    async def renew(
        self, mailbox_ids: Collection[str], *, documents_of: Collection[str] | None = None
    ) -> dict[str, datetime | None]:
        """Extend our leases; returns the mailboxes still ours and still connected, each with
        the time the api asked for its reconciliation (`reconcile_requested_at`), if it did.

        One heartbeat write extends them all. A mailbox is kept while no later term exists
        and its document still names this worker (a resync or disconnect clears that); the
        documents are read for `documents_of` only (all when None), the others are kept on
        their terms alone.
        """
        await self._beat()
        if not mailbox_ids:
            return {}
        held = {m: self._held_terms[m] for m in mailbox_ids if m in self._held_terms}
        later: list[Any] = await self._terms.distinct(
            "mailbox_id", {"_id": {"$in": [f"{m}:{t + 1}" for m, t in held.items()]}}
        )
        won = sorted(set(held) - {str(mailbox_id) for mailbox_id in later})
        checked = won if documents_of is None else sorted(set(won) & set(documents_of))
        kept: dict[str, datetime | None] = dict.fromkeys(sorted(set(won) - set(checked)))
        if checked:
            still = self._mailboxes.find(
                {"_id": {"$in": checked}, "lease.owner": self.worker_id, **CONNECTED},
                projection={"reconcile_requested_at": 1},
            )
            async for document in still:
                kept[str(document["_id"])] = _moment(document.get("reconcile_requested_at"))
        for lost in set(mailbox_ids) - set(kept):
            self._held_terms.pop(lost, None)
        return kept

    async def release(self, mailbox_id: str) -> None:
        term = self._held_terms.pop(mailbox_id, None)
        if term is not None:
            await self._terms.update_one(
                {"_id": f"{mailbox_id}:{term}", "owner": self.worker_id},
                {"$set": {"released": True}},
            )
        await self._mailboxes.update_one(
            {"_id": mailbox_id, "lease.owner": self.worker_id}, {"$set": {"lease": None}}
        )


def _moment(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None
