"""Raw RFC 5322 bytes, stored once per workspace and referenced by id on the bus.

A raw id hashes the workspace id with the bytes, so the same message in two workspaces is two
documents: each workspace holds its own copy, and no `_id` collides across workspaces.
"""

import hashlib
from collections.abc import Sequence

from bson import Binary
from pymongo.errors import BulkWriteError

from mailsync_shared.storage.scoped import WorkspaceStore

DUPLICATE_KEY = 11000


def raw_id_for(workspace_id: str, data: bytes) -> str:
    digest = hashlib.sha256(workspace_id.encode())
    digest.update(b"\0")
    digest.update(data)
    return digest.hexdigest()


async def store_raw(store: WorkspaceStore, data: bytes) -> str:
    """Store the bytes unless they are already there; return their id."""
    raw_id = raw_id_for(store.workspace_id, data)
    await store.raw_messages.update_one(
        {"_id": raw_id},
        {"$setOnInsert": {"size": len(data), "data": Binary(data)}},
        upsert=True,
    )
    return raw_id


async def store_raw_many(store: WorkspaceStore, items: Sequence[bytes]) -> list[str]:
    """Store many messages' bytes in one unordered insert; their ids, in order.

    Bytes already stored are left as they are: their duplicate-key errors are expected.
    """
    ids = [raw_id_for(store.workspace_id, data) for data in items]
    unique = {raw_id: data for raw_id, data in zip(ids, items, strict=True)}
    if not unique:
        return ids
    documents = [
        {"_id": raw_id, "size": len(data), "data": Binary(data)} for raw_id, data in unique.items()
    ]
    try:
        await store.raw_messages.insert_many(documents, ordered=False)
    except BulkWriteError as error:
        others = [e for e in error.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
        if others or error.details.get("writeConcernErrors"):
            raise
    return ids


async def load_raw(store: WorkspaceStore, raw_id: str) -> bytes | None:
    document = await store.raw_messages.find_one({"_id": raw_id})
    return None if document is None else bytes(document["data"])
