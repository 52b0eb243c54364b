"""Indexes, declared in code and created at service start.

Idempotency rests on these unique indexes (natural keys), not on check-then-insert. The local
store (FerretDB over SQLite) gets only the unique ones (`ferretdb.StoreMeasures`).
"""

import contextlib

from pymongo import ASCENDING, DESCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from mailsync_shared.storage.client import Document
from mailsync_shared.storage.ferretdb import measures

INDEXES: dict[str, list[IndexModel]] = {
    "api_keys": [
        IndexModel([("key_hash", ASCENDING)], unique=True, name="key_hash_unique"),
        IndexModel([("workspace_id", ASCENDING), ("created_at", DESCENDING)], name="ws_created"),
    ],
    "users": [
        IndexModel(
            [("workspace_id", ASCENDING), ("email", ASCENDING)], unique=True, name="ws_email_unique"
        ),
    ],
    "mailboxes": [
        IndexModel([("workspace_id", ASCENDING), ("address", ASCENDING)], name="ws_address"),
        IndexModel([("lease.until", ASCENDING)], name="lease_until"),
    ],
    "mailbox_lease_terms": [
        IndexModel([("mailbox_id", ASCENDING), ("term", DESCENDING)], name="mailbox_term"),
        IndexModel([("owner", ASCENDING)], name="owner"),
    ],
    "contacts": [
        IndexModel([("workspace_id", ASCENDING), ("emails", ASCENDING)], name="ws_emails"),
        IndexModel(
            [("workspace_id", ASCENDING), ("external_id", ASCENDING)], name="ws_external_id"
        ),
        IndexModel([("workspace_id", ASCENDING), ("created_at", DESCENDING)], name="ws_created"),
    ],
    "companies": [
        IndexModel([("workspace_id", ASCENDING), ("domains", ASCENDING)], name="ws_domains"),
        IndexModel(
            [("workspace_id", ASCENDING), ("external_id", ASCENDING)], name="ws_external_id"
        ),
        IndexModel([("workspace_id", ASCENDING), ("created_at", DESCENDING)], name="ws_created"),
    ],
    "deals": [
        IndexModel([("workspace_id", ASCENDING), ("contact_ids", ASCENDING)], name="ws_contacts"),
        IndexModel(
            [("workspace_id", ASCENDING), ("external_id", ASCENDING)], name="ws_external_id"
        ),
        IndexModel([("workspace_id", ASCENDING), ("created_at", DESCENDING)], name="ws_created"),
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
        IndexModel([("workspace_id", ASCENDING), ("company_ids", ASCENDING)], name="ws_companies"),
        IndexModel([("workspace_id", ASCENDING), ("deal_ids", ASCENDING)], name="ws_deals"),
        IndexModel(
            [("workspace_id", ASCENDING), ("last_message_at", DESCENDING)], name="ws_recent"
        ),
    ],
    "capture_decisions": [
        IndexModel(
            [("workspace_id", ASCENDING), ("message_id", ASCENDING), ("address", ASCENDING)],
            unique=True,
            name="ws_message_address_unique",
        ),
        IndexModel(
            [("workspace_id", ASCENDING), ("address", ASCENDING), ("at", DESCENDING)],
            name="ws_address_recent",
        ),
    ],
    "skipped_messages": [
        IndexModel([("workspace_id", ASCENDING), ("mailbox_id", ASCENDING)], name="ws_mailbox"),
    ],
    "unstored_mail": [
        IndexModel(
            [("workspace_id", ASCENDING), ("mailbox_id", ASCENDING), ("at", DESCENDING)],
            name="ws_mailbox_at",
        ),
    ],
    "send_requests": [
        IndexModel(
            [
                ("workspace_id", ASCENDING),
                ("requested_by", ASCENDING),
                ("idempotency_key", ASCENDING),
            ],
            unique=True,
            name="ws_requester_idempotency_key_unique",
        ),
        IndexModel([("state", ASCENDING), ("next_attempt_at", ASCENDING)], name="state_next"),
        IndexModel([("state", ASCENDING), ("claimed_until", ASCENDING)], name="state_claim"),
        IndexModel([("state", ASCENDING), ("updated_at", ASCENDING)], name="state_updated"),
    ],
    "webhook_subscriptions": [
        IndexModel([("workspace_id", ASCENDING), ("created_at", DESCENDING)], name="ws_created"),
    ],
    "webhook_deliveries": [
        IndexModel(
            [("subscription_id", ASCENDING), ("state", ASCENDING), ("seq", ASCENDING)],
            name="subscription_state_seq",
        ),
        IndexModel(
            [("workspace_id", ASCENDING), ("subscription_id", ASCENDING), ("seq", DESCENDING)],
            name="ws_subscription_seq",
        ),
    ],
    "send_slots": [
        IndexModel(
            [("workspace_id", ASCENDING), ("mailbox_id", ASCENDING), ("window", ASCENDING)],
            name="ws_mailbox_window",
        ),
    ],
}


# Indexes replaced by one above; dropped at start, since a unique one would still refuse writes.
OBSOLETE_INDEXES: dict[str, list[str]] = {
    # Idempotency keys were unique per workspace; they are unique per requester now.
    "send_requests": ["ws_idempotency_key_unique"],
}


def kept(collection: str) -> list[IndexModel]:
    """The declared indexes of `collection` the store is given (`measures().secondary_indexes`:
    all of them, else the unique ones)."""
    return [
        index
        for index in INDEXES.get(collection, [])
        if measures().secondary_indexes or index.document.get("unique")
    ]


async def _drop_left_out(db: AsyncDatabase[Document], collection: str) -> None:
    """Drop the obsolete indexes of `collection`, and the declared ones the store is not given."""
    keep = {index.document["name"] for index in kept(collection)}
    declared = [index.document["name"] for index in INDEXES.get(collection, [])]
    left_out = [*OBSOLETE_INDEXES.get(collection, []), *(n for n in declared if n not in keep)]
    if not left_out:
        return
    existing = {index["name"] async for index in await db[collection].list_indexes()}
    for name in left_out:
        if name in existing:
            with contextlib.suppress(OperationFailure):  # another service dropped it first
                await db[collection].drop_index(name)


async def ensure_indexes(db: AsyncDatabase[Document]) -> None:
    for collection in sorted({*INDEXES, *OBSOLETE_INDEXES}):
        await _drop_left_out(db, collection)
        indexes = kept(collection)
        if not indexes:
            continue
        if not measures().one_index_per_command:
            await db[collection].create_indexes(indexes)
            continue
        for index in indexes:
            await db[collection].create_indexes([index])
