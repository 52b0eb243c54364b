"""Forwarding a message of a thread over HTTP."""

from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints

from mailsync_api.schemas.common import AddressIn, HeaderText, RecordId
from mailsync_api.schemas.outbound import SendOptions
from mailsync_api.schemas.send_requests import _IDEMPOTENCY, BodyText, IdempotencyKey, Subject

MessageIdText = Annotated[HeaderText, StringConstraints(min_length=3, max_length=998)]


class ForwardIn(SendOptions):
    model_config = SendOptions.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "to": [{"address": "finance@acme.test", "name": "Finance"}],
                    "body_text": "Can you check Ann's numbers below?",
                    "idempotency_key": "forward-42",
                }
            ]
        }
    )

    to: list[AddressIn] = Field(min_length=1, max_length=100)
    cc: list[AddressIn] = Field(default_factory=list, max_length=100)
    bcc: list[AddressIn] = Field(default_factory=list, max_length=100)
    body_text: BodyText = Field(default="", description="The note above the forwarded message.")
    body_html: BodyText | None = Field(default=None, description="The note as HTML (sanitized).")
    subject: Subject | None = Field(default=None, description="By default `Fwd: <subject>`.")
    message_id: MessageIdText | None = Field(
        default=None,
        description="`Message-ID` of the message to forward; by default the thread's last.",
    )
    mailbox_id: RecordId | None = Field(
        default=None, description="Mailbox to send from; by default the thread's own."
    )
    idempotency_key: IdempotencyKey | None = Field(default=None, description=_IDEMPOTENCY)
