"""The raw write rate of the MongoDB-wire server, for documents shaped like logged mail."""

import os
import time
import uuid
from dataclasses import dataclass

from bson import Binary
from pymongo import AsyncMongoClient

from bench.cpu import CpuMeter
from mailsync_shared.storage.client import Document

BODY = ("word " * 400).strip()


@dataclass(frozen=True)
class StoreWrite:
    msgs_per_s: float
    cpu_ms_per_msg: float  # the store's and the writing client's


async def raw_write_rate(
    mongodb_url: str, database: str, count: int, batch: int = 200
) -> StoreWrite:
    """Storing raw bytes plus a message document per message, in batches: rate and CPU."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb_url)
    db = client[database]
    raw_collection = db[f"bench_raw_{uuid.uuid4().hex[:6]}"]
    message_collection = db[f"bench_messages_{uuid.uuid4().hex[:6]}"]
    meter = CpuMeter({"client": os.getpid()}, store_url=mongodb_url)
    meter.start()
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
    used = meter.stop().ms_per(count)
    await raw_collection.drop()
    await message_collection.drop()
    await client.close()
    return StoreWrite(count / elapsed, used.get("store", 0.0) + used["client"])
