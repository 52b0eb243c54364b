"""Workspace isolation and idempotent writes against the real MongoDB-wire server."""

from datetime import timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailsync_shared.clock import utcnow
from mailsync_shared.storage import ferretdb, scoped
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.indexes import INDEXES, ensure_indexes
from mailsync_shared.storage.raw_messages import (
    load_raw,
    load_raw_many,
    store_raw,
    store_raw_many,
)
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore
from mailsync_shared.webhooks.documents import DELIVERIES, WebhookDeliveryDocument

pytestmark = pytest.mark.integration


async def test_one_workspace_never_sees_another(mongo: AsyncDatabase[Document]) -> None:
    alpha = WorkspaceStore(mongo, "ws-alpha-iso")
    beta = WorkspaceStore(mongo, "ws-beta-iso")
    await alpha.contacts.insert_one({"_id": "c-iso-1", "emails": ["ann@client.test"]})
    assert await beta.contacts.find_one({"_id": "c-iso-1"}) is None
    assert await beta.contacts.find({"emails": "ann@client.test"}) == []
    updated = await beta.contacts.update_one({"_id": "c-iso-1"}, {"$set": {"name": "x"}})
    assert updated.matched_count == 0
    deleted = await beta.contacts.delete_many({})
    found = await alpha.contacts.find_one({"_id": "c-iso-1"})
    assert found is not None
    assert "name" not in found
    assert deleted.deleted_count == 0


async def test_writes_by_id_stay_inside_their_workspace(mongo: AsyncDatabase[Document]) -> None:
    """The by-`_id` path (filter naming `_id` alone) keeps the same isolation as any filter."""
    alpha = WorkspaceStore(mongo, "ws-alpha-byid")
    beta = WorkspaceStore(mongo, "ws-beta-byid")
    await alpha.threads.insert_one({"_id": "t-byid-1", "subject": "alpha's"})

    assert await beta.threads.find_one({"_id": "t-byid-1"}, projection={"subject": 1}) is None
    assert await beta.threads.find_one_and_update({"_id": "t-byid-1"}, {"$set": {"x": 1}}) is None
    assert (
        await beta.threads.update_one({"_id": "t-byid-1"}, {"$set": {"x": 1}})
    ).matched_count == 0
    await beta.threads.update_each([({"_id": "t-byid-1"}, {"$set": {"x": 1}})])
    assert (await beta.threads.delete_many({"_id": "t-byid-1"})).deleted_count == 0
    with pytest.raises(DuplicateKeyError):
        await beta.threads.update_one({"_id": "t-byid-1"}, {"$set": {"x": 1}}, upsert=True)
    assert await alpha.threads.find_one({"_id": "t-byid-1"}) == {
        "_id": "t-byid-1",
        "subject": "alpha's",
        "workspace_id": "ws-alpha-byid",
    }

    await beta.threads.update_one(
        {"_id": "t-byid-2"}, {"$setOnInsert": {"subject": "beta's"}}, upsert=True
    )
    created = await beta.threads.find_one({"_id": "t-byid-2"}, projection={"subject": 1})
    assert created == {"_id": "t-byid-2", "subject": "beta's"}
    assert await alpha.threads.find_one({"_id": "t-byid-2"}) is None
    assert await beta.threads.find_one({"_id": "t-byid-2"}, projection={"_id": 1}) == {
        "_id": "t-byid-2"
    }
    assert await beta.threads.find_one({"_id": "t-byid-2"}, projection={"_id": 0}) == {
        "subject": "beta's",
        "workspace_id": "ws-beta-byid",
    }
    assert await beta.threads.count({"subject": "beta's"}) == 1


async def test_one_message_per_message_id_per_workspace(mongo: AsyncDatabase[Document]) -> None:
    store = WorkspaceStore(mongo, "ws-unique")
    await store.messages.insert_one({"_id": "m1", "message_id": "<same@x>"})
    with pytest.raises(DuplicateKeyError):
        await store.messages.insert_one({"_id": "m2", "message_id": "<same@x>"})
    other = WorkspaceStore(mongo, "ws-unique-other")
    await other.messages.insert_one({"_id": "m3", "message_id": "<same@x>"})


async def test_raw_bytes_are_stored_once_and_scoped(mongo: AsyncDatabase[Document]) -> None:
    store = WorkspaceStore(mongo, "ws-raw")
    data = b"Subject: hi\r\n\r\nbody\r\n"
    first = await store_raw(store, data)
    second = await store_raw(store, data)
    assert first == second
    assert await store.raw_messages.count({"_id": first}) == 1
    assert await load_raw(store, first) == data
    assert await load_raw(WorkspaceStore(mongo, "ws-raw-other"), first) is None


async def test_the_same_bytes_in_two_workspaces_are_two_copies(
    mongo: AsyncDatabase[Document],
) -> None:
    data = b"Subject: shared\r\n\r\nthe same newsletter in two workspaces\r\n"
    alpha = WorkspaceStore(mongo, "ws-raw-alpha")
    beta = WorkspaceStore(mongo, "ws-raw-beta")
    [alpha_id] = await store_raw_many(alpha, [data])
    [beta_id] = await store_raw_many(beta, [data])
    assert alpha_id != beta_id
    assert await load_raw(alpha, alpha_id) == data
    assert await load_raw(beta, beta_id) == data
    assert await store_raw(beta, data) == beta_id


@pytest.mark.timeout(120)
async def test_a_hundred_and_fifty_updates_in_one_call_complete(
    mongo: AsyncDatabase[Document],
) -> None:
    """FerretDB stalls on one `update` command of about a hundred statements; none is sent."""
    store = WorkspaceStore(mongo, "ws-bulk-updates")
    await store.threads.insert_many([{"_id": f"bulk-{i}", "n": -1} for i in range(150)])
    await store.threads.update_each(
        [({"_id": f"bulk-{i}"}, {"$set": {"n": i}}) for i in range(150)]
    )
    assert await store.threads.count({"n": {"$gte": 0}}) == 150


async def test_one_idempotency_key_per_requester_and_the_old_workspace_wide_index_goes(
    mongo: AsyncDatabase[Document],
) -> None:
    requests = mongo["send_requests"]
    await requests.drop_index("ws_requester_idempotency_key_unique")
    await requests.create_index(
        [("workspace_id", 1), ("idempotency_key", 1)], unique=True, name="ws_idempotency_key_unique"
    )

    await ensure_indexes(mongo)

    names = {index["name"] async for index in await requests.list_indexes()}
    assert "ws_idempotency_key_unique" not in names
    store = WorkspaceStore(mongo, "ws-keys")
    await store.send_requests.insert_one(
        {"_id": "a", "requested_by": "user:a", "idempotency_key": "K"}
    )
    await store.send_requests.insert_one(
        {"_id": "b", "requested_by": "user:b", "idempotency_key": "K"}
    )
    with pytest.raises(DuplicateKeyError):
        await store.send_requests.insert_one(
            {"_id": "c", "requested_by": "user:a", "idempotency_key": "K"}
        )


async def _index_names(db: AsyncDatabase[Document], collection: str) -> set[str]:
    return {index["name"] async for index in await db[collection].list_indexes()}


def _declared(collection: str, *, unique: bool) -> set[str]:
    return {
        index.document["name"]
        for index in INDEXES[collection]
        if bool(index.document.get("unique")) == unique
    }


async def test_the_local_store_gets_the_unique_indexes_only_and_loses_the_others(
    mongo: AsyncDatabase[Document],
) -> None:
    """FerretDB over SQLite reads no index but `_id`'s: a secondary index is only written."""
    assert ferretdb.measures().kind == "ferretdb"
    await mongo["threads"].create_index(
        [("workspace_id", 1), ("contact_ids", 1)], name="ws_contacts"
    )

    await ensure_indexes(mongo)

    for collection in INDEXES:
        names = await _index_names(mongo, collection)
        assert _declared(collection, unique=True) <= names, collection
        assert not _declared(collection, unique=False) & names, collection
    store = WorkspaceStore(mongo, "ws-unique-indexes")
    await store.messages.insert_one({"_id": "unique-1", "message_id": "<unique@x>"})
    with pytest.raises(DuplicateKeyError):
        await store.messages.insert_one({"_id": "unique-2", "message_id": "<unique@x>"})


async def test_mongodb_gets_every_declared_index(mongo: AsyncDatabase[Document]) -> None:
    before = ferretdb.measures().kind
    ferretdb.use("mongodb")
    try:
        database = mongo.client[f"{mongo.name}_all_indexes"]
        await ensure_indexes(database)
        for collection in ("threads", "messages", "capture_decisions"):
            declared = _declared(collection, unique=True) | _declared(collection, unique=False)
            assert declared <= await _index_names(database, collection), collection
    finally:
        ferretdb.use(before)
        await mongo.client.drop_database(f"{mongo.name}_all_indexes")


async def test_bytes_over_the_document_limit_are_stored_in_chunks(
    mongo: AsyncDatabase[Document],
) -> None:
    store = WorkspaceStore(mongo, "ws-raw-large")
    large = bytes(range(256)) * (20 * 1024 * 1024 // 256) + b"end"
    small = b"Subject: small\r\n\r\nhi\r\n"

    ids = await store_raw_many(store, [small, large])
    again = await store_raw(store, large)

    assert again == ids[1]
    assert await load_raw(store, ids[0]) == small
    assert await load_raw(store, ids[1]) == large
    assert await store.raw_messages.count({"chunk_of": ids[1]}) == 6
    assert await load_raw(WorkspaceStore(mongo, "ws-raw-large-other"), ids[1]) is None


async def test_the_webhook_delivery_log_keeps_pending_and_recent_deliveries(
    store: WorkspaceStore, mongo: AsyncDatabase[Document]
) -> None:
    now = utcnow()
    deliveries = {
        name: WebhookDeliveryDocument(
            workspace_id=store.workspace_id,
            subscription_id="s1",
            event_id=name,
            event_type="mailsync.email.logged.v1",
            seq=seq,
            body="{}",
            state=state,
            finished_at=finished,
        )
        for seq, (name, state, finished) in enumerate(
            (
                ("old-delivered", "delivered", now - timedelta(days=40)),
                ("old-failed", "failed", now - timedelta(days=31)),
                ("recent", "delivered", now - timedelta(days=2)),
                ("pending", "pending", None),
            )
        )
    }
    log = store.collection(DELIVERIES)
    await log.insert_many([d.to_document() for d in deliveries.values()])

    removed = await SystemCollections(mongo).prune_webhook_deliveries(now - timedelta(days=30))

    assert removed >= 2
    kept = {document["event_id"] for document in await log.find({})}
    assert kept == {"recent", "pending"}


async def test_documents_named_by_a_list_of_ids_are_read_from_the_workspace_only(
    mongo: AsyncDatabase[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scoped, "IDS_PER_READ", 2)
    alpha = WorkspaceStore(mongo, "ws-alpha-ids")
    beta = WorkspaceStore(mongo, "ws-beta-ids")
    await alpha.thread_refs.insert_many(
        [{"_id": f"r{n}", "thread_ids": [f"t{n}"]} for n in range(5)]
    )
    await beta.thread_refs.insert_one({"_id": "r9", "thread_ids": ["t9"]})
    wanted = [f"r{n}" for n in (4, 0, 2, 9, 3)] + ["missing", "r0"]

    found = await alpha.thread_refs.find_by_ids(wanted, projection={"thread_ids": 1})

    assert found == {f"r{n}": {"_id": f"r{n}", "thread_ids": [f"t{n}"]} for n in (4, 0, 2, 3)}
    assert await beta.thread_refs.find_by_ids(["r0", "r9"]) == {
        "r9": {"_id": "r9", "workspace_id": beta.workspace_id, "thread_ids": ["t9"]}
    }


async def test_raw_messages_chunked_or_not_are_loaded_together(
    mongo: AsyncDatabase[Document],
) -> None:
    store = WorkspaceStore(mongo, "ws-raw-many")
    large = bytes(range(256)) * (20 * 1024 * 1024 // 256) + b"tail"
    small = b"Subject: one\r\n\r\nhi\r\n"
    small_id, large_id = await store_raw_many(store, [small, large])
    await store.raw_messages.delete_many({"_id": f"{large_id}:3"})
    whole = await store_raw(store, large + b"!")

    loaded = await load_raw_many(store, [large_id, "missing", small_id, whole])

    assert loaded == {large_id: None, "missing": None, small_id: small, whole: large + b"!"}
