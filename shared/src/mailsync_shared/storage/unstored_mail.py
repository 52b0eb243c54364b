"""Mail ingest found on the server and could not store: one record per folder copy, with why.

A message over `max_message_bytes`, or one whose bytes the store refused, is not logged; the
folder's checkpoint moves past it all the same, so one message can never stop a mailbox. What
is kept instead is where it is (mailbox, folder, UIDVALIDITY, UID), its size and the reason:
no address, subject or body. The mailbox's status lists these (`GET /v1/mailboxes/{id}`), and
reconciliation counts them as accounted for rather than missing.
"""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field
from pymongo.errors import DuplicateKeyError

from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.mail import MailSource
from mailsync_shared.ids import stable_id
from mailsync_shared.storage.scoped import WorkspaceStore

UNSTORED_COLLECTION = "unstored_mail"
LISTED_AT_MOST = 100

UnstoredReason = Literal["too_large", "store_refused"]


class UnstoredMail(BaseModel):
    """One folder copy that was found and not stored."""

    mailbox_id: str
    folder: str
    uidvalidity: int
    uid: int
    size: int = Field(description="Its size on the server (RFC822.SIZE), in bytes.")
    reason: UnstoredReason = Field(
        description="`too_large`: over `max_message_bytes`; `store_refused`: the store "
        "refused its bytes (`detail` says how)."
    )
    detail: str = ""
    at: datetime = Field(default_factory=utcnow)


async def record_unstored(store: WorkspaceStore, entries: list[UnstoredMail]) -> None:
    """Record each entry once per folder copy (a repeat after a crash changes nothing)."""
    for entry in entries:
        document = {
            "_id": stable_id(
                "unstored",
                store.workspace_id,
                entry.mailbox_id,
                entry.folder,
                str(entry.uidvalidity),
                str(entry.uid),
            ),
            **entry.model_dump(mode="python"),
        }
        try:
            await store.collection(UNSTORED_COLLECTION).insert_one(document)
        except DuplicateKeyError:
            continue


def unstored(
    source: MailSource, size: int, reason: UnstoredReason, detail: str = ""
) -> UnstoredMail:
    return UnstoredMail(
        mailbox_id=source.mailbox_id,
        folder=source.folder,
        uidvalidity=source.uidvalidity,
        uid=source.uid,
        size=size,
        reason=reason,
        detail=detail[:300],
    )


async def unstored_uids(
    store: WorkspaceStore, mailbox_id: str, folder: str, uidvalidity: int
) -> set[int]:
    """UIDs of one folder copy that were recorded as not stored."""
    found = await store.collection(UNSTORED_COLLECTION).find(
        {"mailbox_id": mailbox_id, "folder": folder, "uidvalidity": uidvalidity},
        projection={"uid": 1},
    )
    return {int(document["uid"]) for document in found}


async def unstored_mail(
    store: WorkspaceStore, mailbox_id: str, limit: int = LISTED_AT_MOST
) -> tuple[int, list[UnstoredMail]]:
    """How many copies of the mailbox were not stored, and the most recent `limit` of them."""
    collection = store.collection(UNSTORED_COLLECTION)
    total = await collection.count({"mailbox_id": mailbox_id})
    recent = await collection.find({"mailbox_id": mailbox_id}, sort=[("at", -1)], limit=limit)
    return total, [UnstoredMail.model_validate(document) for document in recent]
