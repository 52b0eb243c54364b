"""Workspace isolation, made structural.

`WorkspaceCollection` adds the workspace id to every filter and every document it writes, and
refuses filters that try to name another workspace. Code outside this module never sees a raw
collection of workspace data, except `SystemCollections`, whose few cross-workspace operations
(mailbox leases, API key look-up) are named for what they do.

Filters keep their `_id` next to the workspace (`{"_id": x, "workspace_id": w}`): MongoDB
answers them from its `_id` index, and so does the local FerretDB with its `_id` patch
(deploy/ferretdb/patches/id-pushdown.patch).
"""

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError
from pymongo.results import (
    DeleteResult,
    InsertManyResult,
    InsertOneResult,
    UpdateResult,
)

from mailsync_shared.storage.client import Document
from mailsync_shared.storage.ferretdb import measures

WORKSPACE_FIELD = "workspace_id"
DUPLICATE_KEY = 11000
IDS_PER_READ = 1000  # `_id`s per `find` of `find_by_ids` (the most the local FerretDB narrows by)


class IsolationError(ValueError):
    """A query tried to reach outside its workspace."""


class WorkspaceCollection:
    """One collection seen from inside one workspace."""

    def __init__(self, collection: AsyncCollection[Document], workspace_id: str) -> None:
        if not workspace_id:
            raise IsolationError("a workspace id is required")
        self._collection = collection
        self.workspace_id = workspace_id

    @property
    def name(self) -> str:
        return self._collection.name

    def _scope(self, filter_: Mapping[str, Any] | None) -> Document:
        scoped = dict(filter_ or {})
        if scoped.get(WORKSPACE_FIELD, self.workspace_id) != self.workspace_id:
            raise IsolationError(f"filter names another workspace in {self.name}")
        scoped[WORKSPACE_FIELD] = self.workspace_id
        return scoped

    def _stamp(self, document: Mapping[str, Any]) -> Document:
        return self._scope(document)

    async def find_one(
        self,
        filter_: Mapping[str, Any],
        projection: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> Document | None:
        return await self._collection.find_one(
            self._scope(filter_), projection=projection, **kwargs
        )

    async def find_by_ids(
        self, ids: Iterable[Any], projection: Mapping[str, Any] | None = None
    ) -> dict[Any, Document]:
        """The documents of this workspace with these `_id`s, by `_id` (missing ones absent;
        a projection keeps `_id`): one read per `IDS_PER_READ` ids, answered from the `_id`
        index (on the local FerretDB through deploy/ferretdb/patches/in-list-pushdown.patch)."""
        wanted = list(dict.fromkeys(ids))
        documents: dict[Any, Document] = {}
        for start in range(0, len(wanted), IDS_PER_READ):
            chunk = wanted[start : start + IDS_PER_READ]
            for document in await self.find({"_id": {"$in": chunk}}, projection=projection):
                documents[document["_id"]] = document
        return documents

    async def find(
        self,
        filter_: Mapping[str, Any] | None = None,
        *,
        sort: Sequence[tuple[str, int]] | None = None,
        limit: int = 0,
        projection: Mapping[str, Any] | None = None,
    ) -> list[Document]:
        cursor = self._collection.find(self._scope(filter_), projection=projection, limit=limit)
        if sort:
            cursor = cursor.sort(list(sort))
        return await cursor.to_list()

    async def iterate(
        self,
        filter_: Mapping[str, Any] | None = None,
        *,
        sort: Sequence[tuple[str, int]] | None = None,
        batch_size: int = 500,
        projection: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[Document]:
        cursor = self._collection.find(
            self._scope(filter_), projection=projection, batch_size=batch_size
        )
        if sort:
            cursor = cursor.sort(list(sort))
        async for document in cursor:
            yield document

    async def count(self, filter_: Mapping[str, Any] | None = None) -> int:
        return await self._collection.count_documents(self._scope(filter_))

    async def insert_one(self, document: Mapping[str, Any]) -> InsertOneResult:
        return await self._collection.insert_one(self._stamp(document))

    async def insert_many(
        self, documents: Sequence[Mapping[str, Any]], *, ordered: bool = True
    ) -> InsertManyResult:
        """Insert the documents; on a BulkWriteError those without an error were inserted."""
        return await self._collection.insert_many(
            [self._stamp(document) for document in documents], ordered=ordered
        )

    async def insert_or_update(
        self, items: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]
    ) -> None:
        """Insert each document; where its `_id` is taken already, apply its update instead.

        One unordered insert (cheap on any MongoDB-wire server), then updates only for the
        documents that existed.
        """
        taken = await self.insert_new([document for document, _ in items])
        await self.update_each([({"_id": items[i][0]["_id"]}, items[i][1]) for i in taken])

    async def insert_new(self, documents: Sequence[Mapping[str, Any]]) -> list[int]:
        """Insert the documents in one unordered write; the positions of those whose unique
        keys were taken already (the others are inserted). Any other failure raises."""
        if not documents:
            return []
        try:
            await self.insert_many(documents, ordered=False)
        except BulkWriteError as error:
            failed = error.details.get("writeErrors", [])
            if error.details.get("writeConcernErrors") or any(
                e.get("code") != DUPLICATE_KEY for e in failed
            ):
                raise
            return sorted({e["index"] for e in failed})
        return []

    async def update_one(
        self, filter_: Mapping[str, Any], update: Mapping[str, Any], *, upsert: bool = False
    ) -> UpdateResult:
        return await self._collection.update_one(self._scope(filter_), dict(update), upsert=upsert)

    async def update_each(
        self,
        updates: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
        *,
        upsert: bool = False,
    ) -> None:
        """Several single-document updates (filter, update), in order, a few per round trip.

        FerretDB v1 over SQLite keeps every statement's read open until its whole `update`
        command ends and takes one more connection per statement from a pool of 100: a
        command of about a hundred statements waits for a connection forever, and so does
        every later command on that database. Hence commands of `bulk_statements`
        (`storage.ferretdb`), one at a time.
        """
        operations = [
            UpdateOne(self._scope(filter_), dict(update), upsert=upsert)
            for filter_, update in updates
        ]
        size = measures().bulk_statements
        for start in range(0, len(operations), size):
            await self._collection.bulk_write(operations[start : start + size])

    async def update_many(
        self, filter_: Mapping[str, Any], update: Mapping[str, Any]
    ) -> UpdateResult:
        return await self._collection.update_many(self._scope(filter_), dict(update))

    async def find_one_and_update(
        self,
        filter_: Mapping[str, Any],
        update: Mapping[str, Any],
        *,
        upsert: bool = False,
        return_new: bool = True,
    ) -> Document | None:
        return await self._collection.find_one_and_update(
            self._scope(filter_),
            dict(update),
            upsert=upsert,
            return_document=ReturnDocument.AFTER if return_new else ReturnDocument.BEFORE,
        )

    async def delete_many(self, filter_: Mapping[str, Any]) -> DeleteResult:
        return await self._collection.delete_many(self._scope(filter_))


class WorkspaceStore:
    """Every workspace collection, scoped to one workspace."""

    def __init__(self, db: AsyncDatabase[Document], workspace_id: str) -> None:
        self.workspace_id = workspace_id
        self._db = db

    def collection(self, name: str) -> WorkspaceCollection:
        return WorkspaceCollection(self._db[name], self.workspace_id)

    @property
    def mailboxes(self) -> WorkspaceCollection:
        return self.collection("mailboxes")

    @property
    def contacts(self) -> WorkspaceCollection:
        return self.collection("contacts")

    @property
    def companies(self) -> WorkspaceCollection:
        return self.collection("companies")

    @property
    def deals(self) -> WorkspaceCollection:
        return self.collection("deals")

    @property
    def messages(self) -> WorkspaceCollection:
        return self.collection("messages")

    @property
    def threads(self) -> WorkspaceCollection:
        return self.collection("threads")

    @property
    def raw_messages(self) -> WorkspaceCollection:
        return self.collection("raw_messages")

    @property
    def announced_messages(self) -> WorkspaceCollection:
        """One marker per logged message whose events were confirmed (`_id` of the message)."""
        return self.collection("announced_messages")

    @property
    def thread_refs(self) -> WorkspaceCollection:
        return self.collection("thread_refs")

    @property
    def send_requests(self) -> WorkspaceCollection:
        return self.collection("send_requests")

    @property
    def capture_decisions(self) -> WorkspaceCollection:
        return self.collection("capture_decisions")


class SystemCollections:
    """The few operations that must look across workspaces, each named for its purpose."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.workspaces = db["workspaces"]
        self.api_keys = db["api_keys"]
        self.mailboxes = db["mailboxes"]
        self.mailbox_lease_terms = db["mailbox_lease_terms"]
        # The webhook queue's bindings to the public exchange (`mailsync_shared.webhooks.bindings`).
        self.webhook_bindings = db["webhook_bindings"]
        self._db = db

    async def holders_of_pending_events(
        self, collection: str, older_than: datetime, limit: int = 100
    ) -> list[Document]:
        """Documents of any workspace whose outbox holds an event written before `older_than`."""
        return await (
            self._db[collection]
            .find(
                {"outbox.at": {"$lt": older_than}},
                projection={"_id": 1, "workspace_id": 1},
                limit=limit,
            )
            .to_list()
        )

    async def send_timers_due(self, now: datetime, limit: int = 1000) -> list[Document]:
        """The send timers of any workspace that are due now, each with `_id` (its request's)
        and `workspace_id`. Only waiting requests have one, so the collection stays small."""
        return await (
            self._db["send_timers"]
            .find(
                {"due": {"$lte": now}},
                projection={"_id": 1, "workspace_id": 1},
                limit=limit,
            )
            .to_list()
        )

    async def send_requests_to_dispatch(
        self, now: datetime, stale_before: datetime, limit: int = 200
    ) -> list[Document]:
        """Send requests of any workspace the send service's scheduler should hand on now.

        Due ones (`queued` with `next_attempt_at` reached, `sending` whose claim ran out) and
        ones that look lost (`queued` or `sent`-but-unreported, untouched since `stale_before`
        and not handed on since). Each comes with `_id`, `workspace_id`, `state` and
        `next_attempt_at`.
        """
        not_recently = {"$or": [{"dispatched_at": None}, {"dispatched_at": {"$lte": stale_before}}]}
        projection = {"_id": 1, "workspace_id": 1, "state": 1, "next_attempt_at": 1}
        queries: list[dict[str, Any]] = [
            {"state": "queued", "next_attempt_at": {"$lte": now}},
            {"state": "sending", "claimed_until": {"$lte": now}, **not_recently},
            {
                "state": "queued",
                "next_attempt_at": None,
                "updated_at": {"$lte": stale_before},
                **not_recently,
            },
            {
                "state": "sent",
                "reported_at": None,
                "updated_at": {"$lte": stale_before},
                **not_recently,
            },
        ]
        # One query: the MongoDB-wire server scans the collection once rather than four times.
        cursor = self._db["send_requests"].find(
            {"$or": queries}, projection=projection, limit=limit
        )
        return await cursor.to_list()

    async def enabled_webhook_subscriptions(self, limit: int = 10_000) -> list[Document]:
        """Every workspace's enabled webhook subscriptions, each with `_id`, `workspace_id` and
        `event_types`."""
        cursor = self._db["webhook_subscriptions"].find(
            {"enabled": True},
            projection={"_id": 1, "workspace_id": 1, "event_types": 1},
            limit=limit,
        )
        return await cursor.to_list()

    async def webhook_binding_keys(self) -> set[str]:
        """The routing keys the webhook queue is recorded as bound with."""
        return {str(item["_id"]) for item in await self.webhook_bindings.find({}).to_list()}

    async def prune_webhook_deliveries(self, finished_before: datetime) -> int:
        """Remove delivered and failed webhook deliveries of every workspace that finished
        before `finished_before` (the log's retention); pending ones always stay."""
        result = await self._db["webhook_deliveries"].delete_many(
            {"state": {"$in": ["delivered", "failed"]}, "finished_at": {"$lt": finished_before}}
        )
        return result.deleted_count
