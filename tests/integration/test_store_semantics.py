"""What Mailsync's code may rely on from the MongoDB-wire store, proven under concurrency.

Runs against the configured store (`MAILSYNC_MONGODB_URL` / `MONGODB_URL`: the local FerretDB,
or a real MongoDB 7). Every guarantee below holds on MongoDB; the local default must keep it too.

The code may rely on:

1. **Each update applies to one document atomically.** Concurrent `update_one` calls on one
   document, each changing its own fields, all take effect; none writes back a stale copy.
2. **`update_many` is a series of such single-document updates.** An `update_many` racing
   `update_one` calls on the same documents loses none of them (a lease renewal never undoes a
   checkpoint saved meanwhile).
3. **A conditional update decides once.** The filter is matched and the change applied as one
   step: of many writers running `update_one({..., "owner": None}, {"$set": {"owner": me}})`
   exactly one reports a modified document, and a value guarded by `$lt` only grows.
4. **`find_one_and_update` returns the document its own change produced**, so `$inc` through it
   hands out distinct values.
5. **A unique index decides insert races.** Of many concurrent inserts (or upserts) of one key
   exactly one creates the document; the rest fail with a duplicate-key error (or match it).

The code may NOT rely on: multi-document transactions, change streams, the order in which
concurrent writers are applied, or `update_many` being atomic across documents.
"""

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator

import pytest
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailsync_shared.storage.client import Document
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

WRITERS = 4  # separate clients, so writes arrive on separate connections at once
MAILBOXES = 160


@pytest.fixture
async def writers(
    infra: Infra, mongo: AsyncDatabase[Document]
) -> AsyncIterator[list[AsyncCollection[Document]]]:
    """One collection handle per independent client, all on the same fresh collection."""
    await mongo.drop_collection("semantics")
    clients: list[AsyncMongoClient[Document]] = [
        AsyncMongoClient(infra.mongodb_url, tz_aware=True, maxPoolSize=16) for _ in range(WRITERS)
    ]
    yield [client[mongo.name]["semantics"] for client in clients]
    for client in clients:
        await client.close()


def _spread(writers: list[AsyncCollection[Document]]) -> Iterator[AsyncCollection[Document]]:
    return itertools.cycle(writers)


async def test_concurrent_update_one_calls_on_one_document_all_apply(
    writers: list[AsyncCollection[Document]],
) -> None:
    await writers[0].insert_one({"_id": "doc", "count": 0})
    each = _spread(writers)
    fields = 60
    await asyncio.gather(
        *(
            next(each).update_one({"_id": "doc"}, {"$set": {f"f{i}": i}, "$inc": {"count": 1}})
            for i in range(fields)
        )
    )
    document = await writers[0].find_one({"_id": "doc"})
    assert document is not None
    missing = [i for i in range(fields) if document.get(f"f{i}") != i]
    assert missing == [], f"{len(missing)} acknowledged $set lost"
    assert document["count"] == fields


async def test_update_many_never_undoes_a_concurrent_update_one(
    writers: list[AsyncCollection[Document]],
) -> None:
    """The shape of ingest: leases renewed in bulk while each mailbox saves its checkpoint."""
    await writers[0].insert_many(
        [{"_id": f"mb{i}", "worker": "w1", "lease": 0, "checkpoint": 0} for i in range(MAILBOXES)]
    )
    saved = asyncio.Event()

    async def renew_leases() -> int:
        rounds = 0
        while not saved.is_set() or rounds < 3:
            rounds += 1
            await writers[0].update_many({"worker": "w1"}, {"$set": {"lease": rounds}})
        return rounds

    async def save_checkpoints() -> None:
        each = _spread(writers[1:])
        for step in (1, 2):
            await asyncio.gather(
                *(
                    next(each).update_one({"_id": f"mb{i}"}, {"$set": {"checkpoint": step}})
                    for i in range(MAILBOXES)
                )
            )
        saved.set()

    rounds, _ = await asyncio.gather(renew_leases(), save_checkpoints())
    behind = await writers[0].count_documents({"checkpoint": {"$ne": 2}})
    assert behind == 0, f"{behind} of {MAILBOXES} checkpoints moved backwards or were lost"
    assert await writers[0].count_documents({"lease": rounds}) == MAILBOXES


async def test_a_conditional_claim_is_won_by_exactly_one_writer(
    writers: list[AsyncCollection[Document]],
) -> None:
    claims = 40
    await writers[0].insert_many([{"_id": f"job{j}", "owner": None} for j in range(claims)])
    each = _spread(writers)
    contenders = 5

    async def claim(job: int, who: int) -> int:
        result = await next(each).update_one(
            {"_id": f"job{job}", "owner": None}, {"$set": {"owner": who}}
        )
        return result.modified_count

    wins = await asyncio.gather(
        *(claim(job, who) for job in range(claims) for who in range(contenders))
    )
    per_job = [sum(wins[job * contenders : (job + 1) * contenders]) for job in range(claims)]
    assert per_job == [1] * claims


async def test_a_guarded_value_only_grows(writers: list[AsyncCollection[Document]]) -> None:
    await writers[0].insert_one({"_id": "checkpoint", "uid": 0})
    each = _spread(writers)
    values = [(v * 37) % 101 for v in range(1, 101)]  # every value 1..100, out of order
    await asyncio.gather(
        *(
            next(each).update_one({"_id": "checkpoint", "uid": {"$lt": v}}, {"$set": {"uid": v}})
            for v in values
        )
    )
    document = await writers[0].find_one({"_id": "checkpoint"})
    assert document is not None
    assert document["uid"] == 100


async def test_find_one_and_update_hands_out_distinct_values(
    writers: list[AsyncCollection[Document]],
) -> None:
    await writers[0].insert_one({"_id": "sequence", "next": 0})
    each = _spread(writers)
    takes = 60
    taken = await asyncio.gather(
        *(
            next(each).find_one_and_update(
                {"_id": "sequence"}, {"$inc": {"next": 1}}, return_document=ReturnDocument.AFTER
            )
            for _ in range(takes)
        )
    )
    assert sorted(document["next"] for document in taken if document) == list(range(1, takes + 1))


async def test_a_unique_index_lets_exactly_one_insert_win(
    writers: list[AsyncCollection[Document]],
) -> None:
    await writers[0].create_index([("workspace_id", 1), ("message_id", 1)], unique=True)
    each = _spread(writers)
    keys, contenders = 30, 4

    async def insert(key: int, who: int) -> bool:
        try:
            await next(each).insert_one(
                {"workspace_id": "ws", "message_id": f"<m{key}@x>", "by": who}
            )
        except DuplicateKeyError:
            return False
        return True

    created = await asyncio.gather(
        *(insert(key, who) for key in range(keys) for who in range(contenders))
    )
    per_key = [sum(created[key * contenders : (key + 1) * contenders]) for key in range(keys)]
    assert per_key == [1] * keys
    assert await writers[0].count_documents({}) == keys


async def test_concurrent_upserts_of_one_key_create_one_document(
    writers: list[AsyncCollection[Document]],
) -> None:
    await writers[0].create_index([("address", 1)], unique=True)
    each = _spread(writers)
    contenders = 20

    async def upsert(who: int) -> None:
        try:
            await next(each).update_one(
                {"address": "ann@example.com"},
                {"$setOnInsert": {"first": who}, "$addToSet": {"seen_by": who}},
                upsert=True,
            )
        except DuplicateKeyError:  # MongoDB may refuse a racing upsert; the caller retries
            await next(each).update_one(
                {"address": "ann@example.com"}, {"$addToSet": {"seen_by": who}}
            )

    await asyncio.gather(*(upsert(who) for who in range(contenders)))
    documents = await writers[0].find({}).to_list()
    assert len(documents) == 1
    assert sorted(documents[0]["seen_by"]) == list(range(contenders))
