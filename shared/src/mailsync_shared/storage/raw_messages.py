"""Raw RFC 5322 bytes, stored once per workspace and referenced by id on the bus.

A raw id hashes the workspace id with the bytes, so the same message in two workspaces is two
documents: each workspace holds its own copy, and no `_id` collides across workspaces.

MongoDB (and FerretDB) refuse documents over 16 MiB, and mail with attachments is often larger.
Bytes over `INLINE_LIMIT` are stored as `CHUNK_BYTES` chunk documents (`chunk_of`, `index`,
`data`) in the same collection, and the message's own document, holding `size` and `chunks`
instead of `data`, is written after them: a message document that exists always has all its
chunks. Only single-document inserts are used, so this works alike on both servers.
"""

import hashlib
from collections.abc import Iterable, Sequence

from bson import Binary
from pymongo.errors import BulkWriteError

from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import WorkspaceStore

DUPLICATE_KEY = 11000
INLINE_LIMIT = 8 * 1024 * 1024
CHUNK_BYTES = 4 * 1024 * 1024


def raw_id_for(workspace_id: str, data: bytes) -> str:
    digest = hashlib.sha256(workspace_id.encode())
    digest.update(b"\0")
    digest.update(data)
    return digest.hexdigest()


async def store_raw(store: WorkspaceStore, data: bytes) -> str:
    """Store the bytes unless they are already there; return their id."""
    return (await store_raw_many(store, [data]))[0]


async def store_raw_many(store: WorkspaceStore, items: Sequence[bytes]) -> list[str]:
    """Store many messages' bytes in one unordered insert; their ids, in order.

    Bytes already stored are left as they are: their duplicate-key errors are expected.
    """
    ids = [raw_id_for(store.workspace_id, data) for data in items]
    unique = {raw_id: data for raw_id, data in zip(ids, items, strict=True)}
    if not unique:
        return ids
    documents: list[Document] = []
    for raw_id, data in unique.items():
        if len(data) <= INLINE_LIMIT:
            documents.append({"_id": raw_id, "size": len(data), "data": Binary(data)})
            continue
        chunks = _chunk_documents(raw_id, data)
        for chunk in chunks:
            await _insert_new(store, [chunk])
        documents.append({"_id": raw_id, "size": len(data), "chunks": len(chunks)})
    await _insert_new(store, documents)
    return ids


def _chunk_documents(raw_id: str, data: bytes) -> list[Document]:
    return [
        {
            "_id": f"{raw_id}:{index}",
            "chunk_of": raw_id,
            "index": index,
            "data": Binary(data[start : start + CHUNK_BYTES]),
        }
        for index, start in enumerate(range(0, len(data), CHUNK_BYTES))
    ]


async def _insert_new(store: WorkspaceStore, documents: list[Document]) -> None:
    """Insert the documents; those already stored (same id, same bytes) are left alone."""
    try:
        await store.raw_messages.insert_many(documents, ordered=False)
    except BulkWriteError as error:
        others = [e for e in error.details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
        if others or error.details.get("writeConcernErrors"):
            raise


async def load_raw(store: WorkspaceStore, raw_id: str) -> bytes | None:
    return (await load_raw_many(store, [raw_id]))[raw_id]


async def load_raw_many(store: WorkspaceStore, raw_ids: Iterable[str]) -> dict[str, bytes | None]:
    """The bytes of each raw message (None when missing or incomplete), read together."""
    wanted = list(dict.fromkeys(raw_ids))
    heads = await store.raw_messages.find_by_ids(wanted)
    chunk_ids = [
        f"{raw_id}:{index}"
        for raw_id, head in heads.items()
        if "chunks" in head
        for index in range(int(head["chunks"]))
    ]
    chunks = await store.raw_messages.find_by_ids(chunk_ids) if chunk_ids else {}
    loaded: dict[str, bytes | None] = {}
    for raw_id in wanted:
        head = heads.get(raw_id)
        if head is None or "chunks" not in head:
            loaded[raw_id] = None if head is None else bytes(head["data"])
            continue
        parts = [chunks.get(f"{raw_id}:{index}") for index in range(int(head["chunks"]))]
        complete = [bytes(part["data"]) for part in parts if part is not None]
        loaded[raw_id] = b"".join(complete) if len(complete) == len(parts) else None
    return loaded


async def delete_unused_raw(store: WorkspaceStore, raw_ids: Iterable[str]) -> int:
    """Delete the raw bytes (with their chunks) that no stored message or send request names;
    how many messages' bytes were deleted."""
    wanted = sorted(set(raw_ids))
    if not wanted:
        return 0
    used = {
        document["raw_id"]
        for collection in (store.messages, store.send_requests)
        for document in await collection.find({"raw_id": {"$in": wanted}}, projection={"raw_id": 1})
    }
    unused = [raw_id for raw_id in wanted if raw_id not in used]
    if not unused:
        return 0
    result = await store.raw_messages.delete_many({"_id": {"$in": unused}})
    await store.raw_messages.delete_many({"chunk_of": {"$in": unused}})
    return result.deleted_count
