"""Files uploaded for sending: the bytes stored once, each upload with its own name and type.

The bytes go to the shared `attachments` store (deduplicated by content); an upload document
keeps the name and type the caller gave and is what a send request names by id.
"""

import re
from collections.abc import Sequence

from mailsync_api.problems import ProblemError, invalid
from mailsync_api.schemas.attachments import AttachmentOut
from mailsync_api.stored import as_stored
from mailsync_shared.clock import utcnow
from mailsync_shared.ids import new_id
from mailsync_shared.storage.attachments import AttachmentTooLargeError, store_attachment
from mailsync_shared.storage.documents import AttachmentRef
from mailsync_shared.storage.scoped import WorkspaceStore

ATTACHMENT_UPLOADS = "attachment_uploads"
_CONTENT_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")


def too_large(detail: str) -> ProblemError:
    return ProblemError(413, detail, kind="attachments-too-large", title="Attachments too large")


def media_type(header: str | None) -> str:
    """The attachment's type from the upload's Content-Type, parameters dropped."""
    value = (header or "").split(";", 1)[0].strip().lower()
    return value if _CONTENT_TYPE.match(value) else "application/octet-stream"


async def upload(
    store: WorkspaceStore, data: bytes, *, filename: str, content_type: str, limit: int
) -> AttachmentOut:
    """Store one uploaded file; the upload document, whose `_id` send requests name."""
    if not data:
        raise invalid("body", "the attachment is empty")
    try:
        ref = await store_attachment(
            store, data, filename=filename, content_type=content_type, limit=limit
        )
    except AttachmentTooLargeError as error:
        raise too_large(str(error)) from error
    uploaded = as_stored(
        AttachmentOut(
            id=new_id(),
            filename=ref.filename,
            content_type=ref.content_type,
            size=ref.size,
            created_at=utcnow(),
        )
    )
    await store.collection(ATTACHMENT_UPLOADS).insert_one(
        {
            "_id": uploaded.id,
            "attachment_id": ref.attachment_id,
            **uploaded.model_dump(exclude={"id"}),
        }
    )
    return uploaded


async def attachment_refs(store: WorkspaceStore, upload_ids: Sequence[str]) -> list[AttachmentRef]:
    """The uploads a request names, in its order; an unknown id is a 422 at its position."""
    if not upload_ids:
        return []
    documents = await store.collection(ATTACHMENT_UPLOADS).find({"_id": {"$in": list(upload_ids)}})
    by_id = {document["_id"]: document for document in documents}
    refs = []
    for index, upload_id in enumerate(upload_ids):
        document = by_id.get(upload_id)
        if document is None:
            raise invalid(f"body.attachments.{index}", f"no attachment with id {upload_id}")
        refs.append(
            AttachmentRef(
                attachment_id=document["attachment_id"],
                filename=document["filename"],
                content_type=document["content_type"],
                size=document["size"],
            )
        )
    return refs
