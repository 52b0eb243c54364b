"""Threads and their messages over HTTP (timelines, unassigned mail)."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mailsync_api.schemas.common import AddressOut
from mailsync_shared.storage.documents import MessageDocument, ThreadDocument

AccessLevel = Literal["metadata", "subject", "everything"]
ACCESS_DESCRIPTION = (
    "How much the caller may see, from the mailboxes' visibility: `metadata` (participants "
    "and dates; subject and body blank), `subject` (the body blank) or `everything`."
)


class MessageOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    message_id: str = Field(description="The `Message-ID` header.")
    direction: Literal["sent", "received"]
    from_: AddressOut | None = Field(default=None, alias="from")
    to: list[AddressOut]
    cc: list[AddressOut]
    subject: str
    date: datetime | None
    body_text: str
    mailbox_ids: list[str]
    defects: list[str] = Field(
        default_factory=list,
        description="What was odd or cut when the message was read (docs/ingest.md): "
        "`charset_replaced`, `header_truncated`, `date_out_of_range`, ...; empty for most mail.",
    )
    access: AccessLevel = Field(default="everything", description=ACCESS_DESCRIPTION)

    @classmethod
    def of(cls, document: MessageDocument) -> "MessageOut":
        return cls(
            id=document.id,
            message_id=document.message_id,
            direction=document.direction,
            from_=AddressOut(**document.from_.model_dump()) if document.from_ else None,
            to=[AddressOut(**address.model_dump()) for address in document.to],
            cc=[AddressOut(**address.model_dump()) for address in document.cc],
            subject=document.subject,
            date=document.date,
            body_text=document.body_text,
            mailbox_ids=document.mailbox_ids,
            defects=document.defects,
        )


class LinkOut(BaseModel):
    record_type: Literal["contact", "company", "deal"]
    record_id: str
    reason: str


class ThreadOut(BaseModel):
    id: str
    subject: str
    participants: list[str]
    mailbox_ids: list[str]
    contact_ids: list[str]
    company_ids: list[str]
    deal_ids: list[str]
    links: list[LinkOut] = Field(description="Why the thread is linked to each record.")
    manually_linked: bool
    automated: str | None = Field(
        default=None,
        description="Why all of its mail is bulk or automated (List-Unsubscribe, Precedence, "
        "Auto-Submitted, a no-reply sender): then it is linked to matching contacts only, "
        "never to deals or to a company by domain alone.",
    )
    private: bool
    first_message_at: datetime | None
    last_message_at: datetime | None
    message_count: int
    access: AccessLevel = Field(default="everything", description=ACCESS_DESCRIPTION)
    messages: list[MessageOut] = Field(
        description="Oldest first; a message the caller may not see is left out."
    )

    @classmethod
    def of(cls, document: ThreadDocument, messages: list[MessageDocument]) -> "ThreadOut":
        return cls(
            id=document.id,
            subject=document.subject,
            participants=document.participants,
            mailbox_ids=document.mailbox_ids,
            contact_ids=document.contact_ids,
            company_ids=document.company_ids,
            deal_ids=document.deal_ids,
            links=[LinkOut(**reason.model_dump()) for reason in document.link_reasons],
            manually_linked=document.manually_linked,
            automated=document.automated,
            private=document.private,
            first_message_at=document.first_message_at,
            last_message_at=document.last_message_at,
            message_count=document.message_count,
            messages=[MessageOut.of(message) for message in messages],
        )
