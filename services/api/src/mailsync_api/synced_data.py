"""Erasing what was synced from one mailbox: an explicit admin action, separate from
disconnecting, which keeps the logged mail.

The mailbox is marked erased first, so that capture and associate drop its messages still in
their queues instead of logging them again. A message seen only in this mailbox is deleted
with its raw bytes (chunks included) and capture's decisions about it; a message also seen in
another mailbox only loses this mailbox's copy. Threads left empty are deleted with their
refs; the others are recomputed from their remaining messages (subject, participants,
counts, dates, links unless a person set them, refs). The mailbox's send requests go with
their raw bytes and attachments no other request names. The mailbox document itself (with no
credentials left), contacts and other records stay.
"""

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from mailsync_api.mailboxes import load_mailbox
from mailsync_api.problems import conflict, invalid
from mailsync_api.threads import oldest_first
from mailsync_shared.association.linking import counterpart_addresses, link_records
from mailsync_shared.association.records import (
    links_update,
    mailbox_addresses,
    records_for,
    thread_ref_id,
)
from mailsync_shared.clock import utcnow
from mailsync_shared.storage.attachments import delete_unused_attachments
from mailsync_shared.storage.documents import MessageDocument, SendRequestDocument, ThreadDocument
from mailsync_shared.storage.raw_messages import delete_unused_raw
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
                    "capture_decisions_deleted": 240,
                    "send_requests_deleted": 6,
                    "attachments_deleted": 2,
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
    capture_decisions_deleted: int = Field(
        description="What capture decided about the participants of the deleted messages."
    )
    send_requests_deleted: int = Field(description="Requests to send from this mailbox.")
    attachments_deleted: int = Field(description="Files that no remaining request names.")


def _participants(messages: Sequence[MessageDocument]) -> list[str]:
    seen: dict[str, None] = {}
    for message in messages:
        for address in [message.from_, *message.to, *message.cc]:
            if address is not None:
                seen.setdefault(address.address.lower(), None)
    return list(seen)


def _mentioned_ids(messages: Sequence[MessageDocument]) -> list[str]:
    """The `Message-ID`s the messages are or mention: what threading finds them by."""
    return list(
        dict.fromkeys(
            m
            for message in messages
            for m in [message.message_id, *message.in_reply_to, *message.references]
        )
    )


async def _forget_refs(store: WorkspaceStore, thread_ids: Sequence[str]) -> None:
    """Take the threads out of every ref; refs naming no thread any more are deleted."""
    gone = set(thread_ids)
    for ref in await store.thread_refs.find({"thread_ids": {"$in": sorted(gone)}}):
        remaining = [t for t in ref.get("thread_ids") or [] if t not in gone]
        if remaining:
            await store.thread_refs.update_one(
                {"_id": ref["_id"]}, {"$set": {"thread_ids": remaining}}
            )
        else:
            await store.thread_refs.delete_many({"_id": ref["_id"]})


async def _recount_thread(store: WorkspaceStore, thread_id: str) -> bool:
    """Recompute a thread from its remaining messages; False when none remain and it is gone."""
    remaining = oldest_first(
        [
            MessageDocument.from_document(document)
            for document in await store.messages.find({"thread_id": thread_id})
        ]
    )
    if not remaining:
        await store.threads.delete_many({"_id": thread_id})
        return False
    found = await store.threads.find_one({"_id": thread_id})
    if found is None:
        return False
    thread = ThreadDocument.from_document(found)
    dates = [message.date for message in remaining if message.date is not None]
    mailbox_ids = list(dict.fromkeys(m for message in remaining for m in message.mailbox_ids))
    participants = _participants(remaining)
    subject = remaining[0].subject
    fields: dict[str, Any] = {
        "subject": subject,
        # The normalized subject is associate's to compute; a changed subject joins nothing.
        "subject_key": thread.subject_key if subject == thread.subject else "",
        "provider_thread_ids": [
            p for p in thread.provider_thread_ids if p.split(":", 1)[0] in mailbox_ids
        ],
        "message_ids": _mentioned_ids(remaining),
        "logged_message_ids": [message.message_id for message in remaining],
        "mailbox_ids": mailbox_ids,
        "participants": participants,
        "message_count": len(remaining),
        "first_message_at": min(dates) if dates else None,
        "last_message_at": max(dates) if dates else None,
    }
    if not thread.manually_linked:
        owners = await mailbox_addresses(store, mailbox_ids)
        addresses = counterpart_addresses(participants, owners)
        contacts, companies, deals = await records_for(store, addresses)
        links = link_records(addresses, contacts, companies, deals, automated=thread.automated)
        fields |= links_update(links)
    await store.threads.update_one({"_id": thread_id}, {"$set": fields})
    for message_id in fields["message_ids"]:
        await store.thread_refs.update_one(
            {"_id": thread_ref_id(store.workspace_id, "message-id", message_id)},
            {"$addToSet": {"thread_ids": thread_id}},
            upsert=True,
        )
    return True


async def _remove_send_requests(
    store: WorkspaceStore, mailbox_id: str
) -> tuple[int, list[str], int]:
    """Delete the mailbox's send requests; how many, their raw ids, attachments deleted."""
    requests = [
        SendRequestDocument.from_document(document)
        for document in await store.send_requests.find({"mailbox_id": mailbox_id})
    ]
    if not requests:
        return 0, [], 0
    await store.send_requests.delete_many({"_id": {"$in": [request.id for request in requests]}})
    attachments = await delete_unused_attachments(
        store, [ref.attachment_id for request in requests for ref in request.attachments]
    )
    raw_ids = [request.raw_id for request in requests if request.raw_id]
    return len(requests), raw_ids, attachments


async def remove_synced_data(
    store: WorkspaceStore, mailbox_id: str, confirm: str
) -> SyncedDataRemoved:
    mailbox = await load_mailbox(store, mailbox_id)
    if confirm.strip().lower() != mailbox.address:
        raise invalid("query.confirm", "must be the mailbox's address, to confirm the deletion")
    if mailbox.status.state != "disconnected":
        raise conflict("disconnect the mailbox first, or its mail would be synced again")
    # Marked before anything is deleted: from now on capture and associate drop its messages.
    await store.mailboxes.update_one({"_id": mailbox_id}, {"$set": {"erased_at": utcnow()}})
    deleted: list[MessageDocument] = []
    kept_ids: list[str] = []
    thread_ids: set[str] = set()
    async for document in store.messages.iterate({"mailbox_ids": mailbox_id}):
        message = MessageDocument.from_document(document)
        thread_ids.add(message.thread_id)
        others = [other for other in message.mailbox_ids if other != mailbox_id]
        if not others:
            deleted.append(message)
            continue
        kept_ids.append(message.message_id)
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
    affected = sorted(thread_ids)
    await _forget_refs(store, affected)
    threads_deleted = threads_updated = 0
    for thread_id in affected:
        if await _recount_thread(store, thread_id):
            threads_updated += 1
        else:
            threads_deleted += 1
    decisions = await store.capture_decisions.delete_many(
        {"message_id": {"$in": [message.message_id for message in deleted]}}
    )
    # Decisions about messages that were never logged (skipped, or dropped on the way).
    unlogged = await store.capture_decisions.delete_many(
        {"mailbox_id": mailbox_id, "message_id": {"$nin": kept_ids}}
    )
    requests_deleted, request_raw_ids, attachments_deleted = await _remove_send_requests(
        store, mailbox_id
    )
    raw_deleted = await delete_unused_raw(
        store, [*(message.raw_id for message in deleted), *request_raw_ids]
    )
    skipped = await store.collection(SKIPPED_COLLECTION).delete_many({"mailbox_id": mailbox_id})
    await store.collection(UNSTORED_COLLECTION).delete_many({"mailbox_id": mailbox_id})
    report = SyncedDataRemoved(
        mailbox_id=mailbox_id,
        messages_deleted=len(deleted),
        messages_kept=len(kept_ids),
        threads_deleted=threads_deleted,
        threads_updated=threads_updated,
        raw_messages_deleted=raw_deleted,
        skipped_markers_deleted=skipped.deleted_count,
        capture_decisions_deleted=decisions.deleted_count + unlogged.deleted_count,
        send_requests_deleted=requests_deleted,
        attachments_deleted=attachments_deleted,
    )
    logger.info(
        "synced data removed",
        extra={"workspace_id": store.workspace_id, **report.model_dump()},
    )
    return report
