"""Webhook subscriptions and their delivery log over HTTP. Secrets go out once."""

import json
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from mailsync_api.schemas.common import DocumentView, Input, Name, no_line_breaks, unique
from mailsync_shared.topology import PUBLIC_EVENTS
from mailsync_shared.webhooks.documents import (
    DeliveryAttempt,
    DeliveryState,
    WebhookDeliveryDocument,
)

PUBLIC_EVENT_TYPES: list[str] = [event.event_type for event in PUBLIC_EVENTS]

EventType = Literal[
    "mailsync.email.logged.v1",
    "mailsync.thread.associated.v1",
    "mailsync.contact.captured.v1",
    "mailsync.email.sent.v1",
    "mailsync.email.send_failed.v1",
]


def receiver_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http or https URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user name or password")
    if parts.fragment:
        raise ValueError("must not have a fragment")
    return value


ReceiverUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2000),
    AfterValidator(no_line_breaks),
    AfterValidator(receiver_url),
]
EventTypes = Annotated[list[EventType], AfterValidator(unique)]


class WebhookIn(Input):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://crm.example.com/hooks/mailsync",
                    "event_types": ["mailsync.email.logged.v1", "mailsync.thread.associated.v1"],
                    "description": "CRM activity feed",
                }
            ]
        },
    )

    url: ReceiverUrl = Field(description="Where events are POSTed (http or https).")
    event_types: EventTypes = Field(
        default_factory=lambda: list(PUBLIC_EVENT_TYPES),  # type: ignore[arg-type]
        min_length=1,
        description="The public event types to deliver; all of them when left out.",
    )
    enabled: bool = True
    description: Name = ""


class WebhookPatch(Input):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"enabled": False}]})

    url: ReceiverUrl | None = None
    event_types: EventTypes | None = Field(default=None, min_length=1)
    enabled: bool | None = Field(
        default=None,
        description="A disabled subscription records no events and holds its pending ones.",
    )
    description: Name | None = None


class WebhookOut(DocumentView):
    id: str
    url: str
    event_types: list[str]
    enabled: bool
    description: str
    created_at: datetime
    updated_at: datetime
    previous_secret_until: datetime | None = Field(
        description="Until when deliveries are also signed with the secret before the last "
        "rotation; null when they are not."
    )


class CreatedWebhook(WebhookOut):
    secret: str = Field(
        description="The `whsec_` signing secret; shown only in this answer, keep it secret."
    )


class AttemptOut(BaseModel):
    at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null when none came.")
    error: str | None = Field(description="Why no answer came (timeout, refused, not allowed).")
    duration_ms: int

    @classmethod
    def of(cls, attempt: DeliveryAttempt) -> "AttemptOut":
        return cls(**attempt.model_dump())


class DeliveryOut(BaseModel):
    id: str
    event_id: str = Field(description="The event's id, sent as `webhook-id` on every try.")
    event_type: str
    state: DeliveryState = Field(
        description="`pending` (being tried, or waiting for its turn or its next try), "
        "`delivered` (the receiver answered 2xx) or `failed` (retried for the whole retry "
        "window without success)."
    )
    attempts: list[AttemptOut] = Field(description="Tries, oldest first.")
    next_attempt_at: datetime | None = Field(description="When it is tried next, if pending.")
    created_at: datetime
    finished_at: datetime | None
    event: dict[str, Any] = Field(description="The event as delivered (the request body).")

    @classmethod
    def of(cls, document: WebhookDeliveryDocument) -> "DeliveryOut":
        return cls(
            id=document.id,
            event_id=document.event_id,
            event_type=document.event_type,
            state=document.state,
            attempts=[AttemptOut.of(attempt) for attempt in document.attempts],
            next_attempt_at=document.next_attempt_at if document.state == "pending" else None,
            created_at=document.created_at,
            finished_at=document.finished_at,
            event=json.loads(document.body),
        )
