"""Stored shapes of webhook subscriptions and deliveries.

A delivery is one event for one subscription; its `_id` derives from both, so an event that
RabbitMQ delivers twice records one delivery. `seq` orders a subscription's deliveries as the
events arrived; they are sent in that order, one at a time per subscription.
"""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from mailsync_shared.clock import utcnow
from mailsync_shared.ids import stable_id
from mailsync_shared.storage.documents import StoredDocument

SUBSCRIPTIONS = "webhook_subscriptions"
DELIVERIES = "webhook_deliveries"
LEASES = "webhook_leases"

DeliveryState = Literal["pending", "delivered", "failed"]


class WebhookSubscriptionDocument(StoredDocument):
    url: str
    event_types: list[str]
    enabled: bool = True
    description: str = ""
    secret_encrypted: str = Field(description="Fernet token of the `whsec_` signing secret.")
    previous_secret_encrypted: str | None = Field(
        default=None,
        description=(
            "The secret before the last rotation; deliveries are signed with it too until "
            "`previous_secret_until`."
        ),
    )
    previous_secret_until: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    def wants(self, event_type: str) -> bool:
        return self.enabled and event_type in self.event_types


class DeliveryAttempt(BaseModel):
    at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null when none.")
    error: str | None = Field(default=None, description="Why no answer came (timeout, refused).")
    duration_ms: int


class WebhookDeliveryDocument(StoredDocument):
    subscription_id: str
    event_id: str
    event_type: str
    seq: int = Field(description="Order of arrival within the subscription.")
    body: str = Field(description="The event as JSON, sent as the request body.")
    state: DeliveryState = "pending"
    attempts: list[DeliveryAttempt] = Field(default_factory=list)
    next_attempt_at: datetime = Field(default_factory=utcnow)
    first_attempt_at: datetime | None = Field(
        default=None, description="Start of the current retry window (reset by a replay)."
    )
    created_at: datetime = Field(default_factory=utcnow)
    finished_at: datetime | None = None

    @staticmethod
    def id_for(subscription_id: str, event_id: str) -> str:
        return stable_id("webhook-delivery", subscription_id, event_id)
