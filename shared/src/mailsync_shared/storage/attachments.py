"""Files sent with send requests: bytes stored once per workspace, referenced from the request.

Like raw messages, the bytes never travel on the bus. The total size a request may carry is
capped so that the composed message (base64 adds a third) stays well inside one stored
document (16 MiB) and inside what common providers accept (Gmail 25 MB, Microsoft 365 35 MB).
"""

import hashlib
from collections.abc import Iterable

from bson import Binary

from mailsync_shared.mail.headers import single_line
from mailsync_shared.storage.documents import AttachmentRef
from mailsync_shared.storage.scoped import WorkspaceStore

ATTACHMENTS = "attachments"
MAX_ATTACHMENTS_BYTES = 10 * 1024 * 1024


class AttachmentTooLargeError(ValueError):
    """The attachments of one request exceed the size cap."""


def attachment_id_for(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_total_size(refs: list[AttachmentRef], limit: int = MAX_ATTACHMENTS_BYTES) -> None:
    """Refuse a set of attachments whose total size is over `limit` bytes."""
    total = sum(ref.size for ref in refs)
    if total > limit:
        raise AttachmentTooLargeError(f"attachments total {total} bytes; the limit is {limit}")


async def store_attachment(
    store: WorkspaceStore,
    data: bytes,
    *,
    filename: str,
    content_type: str = "application/octet-stream",
    limit: int = MAX_ATTACHMENTS_BYTES,
) -> AttachmentRef:
    """Store the bytes unless they are there already; the reference goes on the request."""
    if len(data) > limit:
        raise AttachmentTooLargeError(f"attachment is {len(data)} bytes; the limit is {limit}")
    attachment_id = attachment_id_for(data)
    await store.collection(ATTACHMENTS).update_one(
        {"_id": _document_id(store, attachment_id)},
        {"$setOnInsert": {"size": len(data), "data": Binary(data)}},
        upsert=True,
    )
    return AttachmentRef(
        attachment_id=attachment_id,
        filename=single_line(filename) or "attachment",
        content_type=single_line(content_type).lower() or "application/octet-stream",
        size=len(data),
    )


def _document_id(store: WorkspaceStore, attachment_id: str) -> str:
    # `_id` is unique across workspaces: the same file stored by two workspaces is two documents.
    return f"{store.workspace_id}:{attachment_id}"


async def load_attachment(store: WorkspaceStore, attachment_id: str) -> bytes | None:
    document = await store.collection(ATTACHMENTS).find_one(
        {"_id": _document_id(store, attachment_id)}
    )
    return None if document is None else bytes(document["data"])


async def delete_unused_attachments(store: WorkspaceStore, attachment_ids: Iterable[str]) -> int:
    """Delete the attachments no stored send request names; how many were deleted."""
    wanted = sorted(set(attachment_ids))
    if not wanted:
        return 0
    used = {
        ref["attachment_id"]
        for document in await store.send_requests.find(
            {"attachments.attachment_id": {"$in": wanted}}, projection={"attachments": 1}
        )
        for ref in document.get("attachments") or []
    }
    unused = [_document_id(store, a) for a in wanted if a not in used]
    if not unused:
        return 0
    result = await store.collection(ATTACHMENTS).delete_many({"_id": {"$in": unused}})
    return result.deleted_count
