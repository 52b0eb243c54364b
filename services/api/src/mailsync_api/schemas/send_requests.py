"""Replies and new messages over HTTP."""

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from mailsync_api.schemas.attachments import SentAttachmentOut
from mailsync_api.schemas.common import AddressIn, AddressOut, HeaderText, RecordId
from mailsync_api.schemas.outbound import SendOptions
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


class ReplyIn(SendOptions):
    model_config = SendOptions.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {"body_text": "Thanks Ann, Tuesday works for me.", "idempotency_key": "reply-42"}
            ]
        }
    )

    body_text: BodyText
    body_html: BodyText | None = None
    mailbox_id: RecordId | None = Field(
        default=None, description="Mailbox to send from; by default the thread's own."
    )
    reply_all: bool = Field(default=False, description="Copy everyone on the last message.")
    cc: list[AddressIn] = Field(
        default_factory=list, max_length=100, description="Copied besides the reply's own Cc."
    )
    bcc: list[AddressIn] = Field(default_factory=list, max_length=100)
    idempotency_key: IdempotencyKey | None = Field(default=None, description=_IDEMPOTENCY)


class ComposeIn(SendOptions):
    model_config = SendOptions.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "mailbox_id": "5f0c6d2e8b7a4c1d9e3f2a1b0c9d8e7f",
                    "to": [{"address": "ann@client.test", "name": "Ann"}],
                    "subject": "Our proposal",
                    "body_text": "Hello Ann, ...",
                }
            ]
        }
    )

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
    bcc: list[AddressOut] = Field(
        description="Blind copies; shown only to whoever may send from the mailbox."
    )
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
    attachments: list[SentAttachmentOut] = Field(default_factory=list)
    forward_of: str | None = Field(
        default=None, description="`Message-ID` of the message forwarded as an attachment."
    )
    send_at: datetime | None = Field(default=None, description="Not sent before this time.")
    next_attempt_at: datetime | None = Field(
        default=None,
        description="While `queued`: when it is tried next (scheduled, retried, rate limited).",
    )
    sent_at: datetime | None = None
    cancelled_at: datetime | None = None

    @classmethod
    def of(cls, document: SendRequestDocument, *, bcc: bool) -> "SendRequestOut":
        """The request; its Bcc recipients (`bcc`) only for whoever may send from its mailbox."""

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
            bcc=out(list(document.bcc)) if bcc else [],
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
            attachments=[SentAttachmentOut.of(ref) for ref in document.attachments],
            forward_of=document.forward_of.message_id if document.forward_of else None,
            send_at=document.send_at,
            next_attempt_at=document.next_attempt_at,
            sent_at=document.sent_at,
            cancelled_at=document.cancelled_at,
        )
