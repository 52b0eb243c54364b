"""Client-only mailboxes: mail that matches no record is counted, never stored.

With `MailboxDocument.sync.scope == "client_only"`, associate logs a message only when its
thread is linked to a record or its participants match one (a contact by address, a
company by domain). Any other message leaves nothing but a marker in `skipped_messages`:
the mailbox id and a one-way hash of the `Message-ID` (so a redelivery is not counted
twice), no address, subject or body. `skipped_unmatched` counts them per mailbox.

Messages sent through Mailsync are always logged. A skipped message is gone for good: if
its sender becomes a contact later, only later mail is logged.
"""

from pymongo.errors import DuplicateKeyError

from mailsync_shared.clock import utcnow
from mailsync_shared.ids import stable_id
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
