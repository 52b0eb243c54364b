"""Indexes, declared in code and created at service start.

Idempotency rests on these unique indexes (natural keys), not on check-then-insert.
"""

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.storage.client import Document

INDEXES: dict[str, list[IndexModel]] = {
    "api_keys": [IndexModel([("key_hash", ASCENDING)], unique=True, name="key_hash_unique")],
    "mailboxes": [
        IndexModel([("workspace_id", ASCENDING), ("address", ASCENDING)], name="ws_address"),
        IndexModel([("lease.until", ASCENDING)], name="lease_until"),
    ],
    "contacts": [
        IndexModel([("workspace_id", ASCENDING), ("emails", ASCENDING)], name="ws_emails"),
    ],
    "companies": [
        IndexModel([("workspace_id", ASCENDING), ("domains", ASCENDING)], name="ws_domains"),
    ],
    "deals": [
        IndexModel([("workspace_id", ASCENDING), ("contact_ids", ASCENDING)], name="ws_contacts"),
    ],
    "messages": [
        IndexModel(
            [("workspace_id", ASCENDING), ("message_id", ASCENDING)],
            unique=True,
            name="ws_message_id_unique",
        ),
        IndexModel([("workspace_id", ASCENDING), ("thread_id", ASCENDING)], name="ws_thread"),
    ],
    "threads": [
        IndexModel([("workspace_id", ASCENDING), ("contact_ids", ASCENDING)], name="ws_contacts"),
        IndexModel(
            [("workspace_id", ASCENDING), ("last_message_at", DESCENDING)], name="ws_recent"
        ),
    ],
    "send_requests": [
        IndexModel(
            [("workspace_id", ASCENDING), ("idempotency_key", ASCENDING)],
            unique=True,
            name="ws_idempotency_key_unique",
        ),
    ],
}


async def ensure_indexes(db: AsyncDatabase[Document]) -> None:
    for collection, indexes in INDEXES.items():
        await db[collection].create_indexes(indexes)
