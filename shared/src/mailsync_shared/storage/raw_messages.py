"""Raw RFC 5322 bytes, stored once per workspace and referenced by id on the bus."""

import hashlib

from bson import Binary

from mailsync_shared.storage.scoped import WorkspaceStore


def raw_id_for(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def store_raw(store: WorkspaceStore, data: bytes) -> str:
    """Store the bytes unless they are already there; return their id."""
    raw_id = raw_id_for(data)
    await store.raw_messages.update_one(
        {"_id": raw_id},
        {"$setOnInsert": {"size": len(data), "data": Binary(data)}},
        upsert=True,
    )
    return raw_id


async def load_raw(store: WorkspaceStore, raw_id: str) -> bytes | None:
    document = await store.raw_messages.find_one({"_id": raw_id})
    return None if document is None else bytes(document["data"])
