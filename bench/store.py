"""The raw write rate of the MongoDB-wire server, for documents shaped like logged mail."""

import time
import uuid

from bson import Binary
from pymongo import AsyncMongoClient

from mailsync_shared.storage.client import Document

BODY = ("word " * 400).strip()


async def raw_write_rate(mongodb_url: str, database: str, count: int, batch: int = 200) -> float:
    """Messages per second for storing raw bytes plus a message document, in batches."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb_url)
    db = client[database]
    raw_collection = db[f"bench_raw_{uuid.uuid4().hex[:6]}"]
    message_collection = db[f"bench_messages_{uuid.uuid4().hex[:6]}"]
    started = time.perf_counter()
    for offset in range(0, count, batch):
        size = min(batch, count - offset)
        raws = [{"_id": uuid.uuid4().hex, "data": Binary(BODY.encode())} for _ in range(size)]
        await raw_collection.insert_many(raws, ordered=False)
        await message_collection.insert_many(
            [
                {
                    "_id": uuid.uuid4().hex,
                    "workspace_id": "bench",
                    "raw_id": raw["_id"],
                    "body_text": BODY,
                }
                for raw in raws
            ],
            ordered=False,
        )
    elapsed = time.perf_counter() - started
    await raw_collection.drop()
    await message_collection.drop()
    await client.close()
    return count / elapsed
