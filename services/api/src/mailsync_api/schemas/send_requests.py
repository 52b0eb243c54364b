"""Replies and new messages over HTTP."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mailsync_api.schemas.common import AddressIn, AddressOut, HeaderText, Input, RecordId
from mailsync_shared.storage.documents import SendRequestDocument, SendState

IdempotencyKey = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")
]
Subject = Annotated[HeaderText, StringConstraints(max_length=998)]
BodyText = Annotated[str, StringConstraints(max_length=1_000_000)]

_IDEMPOTENCY = (
    "Sending the same key again answers with the request made the first time; nothing is "
    "sent twice."
)


class ReplyIn(Input):
    body_text: BodyText
    body_html: BodyText | None = None
    mailbox_id: RecordId | None = Field(
        default=None, description="Mailbox to send from; by default the thread's own."
    )
    reply_all: bool = Field(default=False, description="Copy everyone on the last message.")
    idempotency_key: IdempotencyKey | None = Field(default=None, description=_IDEMPOTENCY)


class ComposeIn(Input):
    mailbox_id: RecordId
    to: list[AddressIn] = Field(min_length=1, max_length=100)
    cc: list[AddressIn] = Field(default_factory=list, max_length=100)
    bcc: list[AddressIn] = Field(default_factory=list, max_length=100)
    subject: Subject
    body_text: BodyText
    body_html: BodyText | None = None
    idempotency_key: IdempotencyKey | None = Field(default=None, description=_IDEMPOTENCY)


class SendRequestOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: str
    state: SendState
    mailbox_id: str
    thread_id: str | None
    idempotency_key: str
    from_: AddressOut = Field(alias="from")
    to: list[AddressOut]
    cc: list[AddressOut]
    bcc: list[AddressOut]
    subject: str
    body_text: str
    body_html: str | None
    message_id: str = Field(description="`Message-ID` the message is sent with.")
    in_reply_to: list[str]
    references: list[str]
    attempts: int
    error: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, document: SendRequestDocument) -> "SendRequestOut":
        def out(addresses: list[object]) -> list[AddressOut]:
            return [
                AddressOut.model_validate(address, from_attributes=True) for address in addresses
            ]

        return cls(
            id=document.id,
            state=document.state,
            mailbox_id=document.mailbox_id,
            thread_id=document.thread_id,
            idempotency_key=document.idempotency_key,
            from_=AddressOut.model_validate(document.from_, from_attributes=True),
            to=out(list(document.to)),
            cc=out(list(document.cc)),
            bcc=out(list(document.bcc)),
            subject=document.subject,
            body_text=document.body_text,
            body_html=document.body_html,
            message_id=document.message_id,
            in_reply_to=document.in_reply_to,
            references=document.references,
            attempts=document.attempts,
            error=document.error,
            created_at=document.created_at,
            updated_at=document.updated_at,
        )
