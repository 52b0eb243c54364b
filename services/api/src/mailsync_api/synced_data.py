"""Erasing what was synced from one mailbox: an explicit admin action, separate from
disconnecting, which keeps the logged mail.

A message seen only in this mailbox is deleted with its raw bytes; a message also seen in
another mailbox only loses this mailbox's copy. Threads left empty are deleted, the others
recounted. The mailbox itself, contacts and other records are not touched.
"""

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from mailsync_api.mailboxes import load_mailbox
from mailsync_api.problems import conflict, invalid
from mailsync_api.threads import oldest_first
from mailsync_shared.storage.documents import MessageDocument
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.storage.unstored_mail import UNSTORED_COLLECTION

logger = logging.getLogger(__name__)

SKIPPED_COLLECTION = "skipped_messages"


class SyncedDataRemoved(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "mailbox_id": "5f0c6d2e8b7a4c1d9e3f2a1b0c9d8e7f",
                    "messages_deleted": 120,
                    "messages_kept": 4,
                    "threads_deleted": 37,
                    "threads_updated": 3,
                    "raw_messages_deleted": 120,
                    "skipped_markers_deleted": 58,
                }
            ]
        }
    }

    mailbox_id: str
    messages_deleted: int = Field(description="Messages seen only in this mailbox.")
    messages_kept: int = Field(
        description="Messages also seen in another mailbox: only this mailbox's copy is gone."
    )
    threads_deleted: int = Field(description="Threads left without messages.")
    threads_updated: int = Field(description="Threads recounted without the deleted messages.")
    raw_messages_deleted: int
    skipped_markers_deleted: int


def _participants(messages: Sequence[MessageDocument]) -> list[str]:
    seen: dict[str, None] = {}
    for message in messages:
        for address in [message.from_, *message.to, *message.cc]:
            if address is not None:
                seen.setdefault(address.address.lower(), None)
    return list(seen)


async def _recount_thread(store: WorkspaceStore, thread_id: str) -> bool:
    """Recount a thread from its remaining messages; False when none remain and it is gone."""
    remaining = oldest_first(
        [
            MessageDocument.from_document(document)
            for document in await store.messages.find({"thread_id": thread_id})
        ]
    )
    if not remaining:
        await store.threads.delete_many({"_id": thread_id})
        return False
    dates = [message.date for message in remaining if message.date is not None]
    await store.threads.update_one(
        {"_id": thread_id},
        {
            "$set": {
                "message_ids": [message.message_id for message in remaining],
                "logged_message_ids": [message.message_id for message in remaining],
                "mailbox_ids": list(
                    dict.fromkeys(m for message in remaining for m in message.mailbox_ids)
                ),
                "participants": _participants(remaining),
                "message_count": len(remaining),
                "first_message_at": min(dates) if dates else None,
                "last_message_at": max(dates) if dates else None,
            }
        },
    )
    return True


async def remove_synced_data(
    store: WorkspaceStore, mailbox_id: str, confirm: str
) -> SyncedDataRemoved:
    mailbox = await load_mailbox(store, mailbox_id)
    if confirm.strip().lower() != mailbox.address:
        raise invalid("query.confirm", "must be the mailbox's address, to confirm the deletion")
    if mailbox.status.state != "disconnected":
        raise conflict("disconnect the mailbox first, or its mail would be synced again")
    deleted: list[MessageDocument] = []
    kept = 0
    thread_ids: set[str] = set()
    async for document in store.messages.iterate({"mailbox_ids": mailbox_id}):
        message = MessageDocument.from_document(document)
        thread_ids.add(message.thread_id)
        others = [other for other in message.mailbox_ids if other != mailbox_id]
        if not others:
            deleted.append(message)
            continue
        kept += 1
        sources: list[Any] = [
            source.model_dump() for source in message.sources if source.mailbox_id != mailbox_id
        ]
        await store.messages.update_one(
            {"_id": message.id}, {"$set": {"mailbox_ids": others, "sources": sources}}
        )
    if deleted:
        deleted_ids = [message.id for message in deleted]
        await store.messages.delete_many({"_id": {"$in": deleted_ids}})
        await store.announced_messages.delete_many({"_id": {"$in": deleted_ids}})
    async for document in store.threads.iterate({"mailbox_ids": mailbox_id}, projection={"_id": 1}):
        thread_ids.add(document["_id"])
    threads_deleted = threads_updated = 0
    for thread_id in sorted(thread_ids):
        if await _recount_thread(store, thread_id):
            threads_updated += 1
        else:
            threads_deleted += 1
    raw_ids = sorted({message.raw_id for message in deleted})
    still_used = {
        document["raw_id"]
        for document in await store.messages.find(
            {"raw_id": {"$in": raw_ids}}, projection={"raw_id": 1}
        )
    } | {
        document["raw_id"]
        for document in await store.send_requests.find(
            {"raw_id": {"$in": raw_ids}}, projection={"raw_id": 1}
        )
    }
    unused = [raw_id for raw_id in raw_ids if raw_id not in still_used]
    raw_result = await store.raw_messages.delete_many({"_id": {"$in": unused}}) if unused else None
    if unused:  # the chunks of messages stored in parts
        await store.raw_messages.delete_many({"chunk_of": {"$in": unused}})
    skipped = await store.collection(SKIPPED_COLLECTION).delete_many({"mailbox_id": mailbox_id})
    await store.collection(UNSTORED_COLLECTION).delete_many({"mailbox_id": mailbox_id})
    report = SyncedDataRemoved(
        mailbox_id=mailbox_id,
        messages_deleted=len(deleted),
        messages_kept=kept,
        threads_deleted=threads_deleted,
        threads_updated=threads_updated,
        raw_messages_deleted=raw_result.deleted_count if raw_result else 0,
        skipped_markers_deleted=skipped.deleted_count,
    )
    logger.info(
        "synced data removed",
        extra={"workspace_id": store.workspace_id, **report.model_dump()},
    )
    return report
