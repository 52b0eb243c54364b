"""Files uploaded to be sent with send requests."""

from datetime import datetime

from pydantic import BaseModel, Field

from mailsync_shared.storage.documents import AttachmentRef


class AttachmentOut(BaseModel):
    id: str = Field(description="Name it in `attachments` of a send request.")
    filename: str
    content_type: str
    size: int = Field(description="Bytes.")
    created_at: datetime


class SentAttachmentOut(BaseModel):
    filename: str
    content_type: str
    size: int

    @classmethod
    def of(cls, ref: AttachmentRef) -> "SentAttachmentOut":
        return cls(filename=ref.filename, content_type=ref.content_type, size=ref.size)
