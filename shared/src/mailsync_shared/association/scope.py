"""Client-only mailboxes: mail that matches no record is counted, never stored.

With `MailboxDocument.sync.scope == "client_only"`, associate logs a message only when its
thread is linked to a record or its participants match one (a contact by address, a
company by domain). Any other message leaves nothing but a marker in `skipped_messages`:
the mailbox id and a one-way hash of the `Message-ID` (so a redelivery is not counted
twice), no address, subject or body. `skipped_unmatched` counts them per mailbox.

Messages sent through Mailsync are always logged. A skipped message is gone for good: if
its sender becomes a contact later, only later mail is logged. What ingest and capture kept of
it before associate decided (its raw bytes, capture's decisions about its participants) is
deleted with `forget_unlogged`, as is that of a message dropped because its mailbox was
disconnected or erased meanwhile.
"""

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo.errors import DuplicateKeyError

from mailsync_shared.clock import utcnow
from mailsync_shared.ids import stable_id
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import OUT_OF_SERVICE
from mailsync_shared.storage.raw_messages import delete_unused_raw
from mailsync_shared.storage.scoped import WorkspaceStore

SKIPPED_COLLECTION = "skipped_messages"


async def record_skipped(store: WorkspaceStore, mailbox_id: str, message_id: str) -> None:
    marker = {
        "_id": stable_id("skipped-message", store.workspace_id, mailbox_id, message_id),
        "mailbox_id": mailbox_id,
        "at": utcnow(),
    }
    try:
        await store.collection(SKIPPED_COLLECTION).insert_one(marker)
    except DuplicateKeyError:
        return


async def skipped_unmatched(store: WorkspaceStore, mailbox_id: str) -> int:
    """How many messages of a client-only mailbox were counted and not stored."""
    return await store.collection(SKIPPED_COLLECTION).count({"mailbox_id": mailbox_id})


def stopped(mailbox: Mapping[str, Any]) -> bool:
    """A stored mailbox whose mail is no longer wanted: disconnected (or not yet approved), or
    its synced data erased."""
    state = (mailbox.get("status") or {}).get("state")
    return state in OUT_OF_SERVICE or mailbox.get("erased_at") is not None


# What capture and associate read fresh of each mailbox a batch names.
FLAGS = {"visibility": 1, "status.state": 1, "erased_at": 1}


async def mailbox_flags(store: WorkspaceStore, mailbox_ids: Iterable[str]) -> dict[str, Document]:
    """The named mailboxes' visibility and whether they are stopped, read now by `_id` (not
    from a directory kept for seconds): a disconnect or an erase applies to the next batch."""
    named = list(dict.fromkeys(mailbox_ids))
    found = await asyncio.gather(
        *(store.mailboxes.find_one({"_id": mailbox_id}, projection=FLAGS) for mailbox_id in named)
    )
    return {
        mailbox_id: document
        for mailbox_id, document in zip(named, found, strict=True)
        if document is not None
    }


@dataclass(frozen=True)
class Unlogged:
    """A message associate did not log: seen in `mailbox_id`, its bytes under `raw_id`."""

    mailbox_id: str
    message_id: str
    raw_id: str


async def forget_unlogged(store: WorkspaceStore, messages: Sequence[Unlogged]) -> None:
    """Delete what was kept of messages that were not logged: capture's decisions about them
    (from their mailbox) and their raw bytes, unless a stored message still names them."""
    if not messages:
        return
    ids = sorted({message.message_id for message in messages})
    logged = {
        document["message_id"]
        for document in await store.messages.find(
            {"message_id": {"$in": ids}}, projection={"message_id": 1}
        )
    }
    for message in messages:
        if message.message_id not in logged:
            await store.capture_decisions.delete_many(
                {"message_id": message.message_id, "mailbox_id": message.mailbox_id}
            )
    await delete_unused_raw(store, [message.raw_id for message in messages if message.raw_id])
