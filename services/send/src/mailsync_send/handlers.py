"""Send's router: send requests handed to the `Sender`, public events to the webhook recorder.

The handlers only decode and call; what a send request leads to (sent, deferred, refused,
already done) is decided in `sender.py`, and which webhook deliveries an event makes in
`webhooks/recorder.py`.
"""

import logging
from typing import Protocol

from faststream import AckPolicy
from faststream.rabbit import RabbitRouter

from mailsync_send.sender import Done
from mailsync_shared.contracts.outbound import SendRequested
from mailsync_shared.deliveries import Delivery, as_delivered
from mailsync_shared.topology import SEND_REQUESTS, WEBHOOK_EVENTS_CHANNEL, WEBHOOK_EVENTS_QUEUE

logger = logging.getLogger(__name__)


class SendRequests(Protocol):
    """Carries out a stored send request (`Sender`)."""

    async def handle(self, workspace_id: str, request_id: str) -> Done:
        """Take the request as far as it can go now; what came of it."""
        ...


class EventRecorder(Protocol):
    """Records a public event for the webhooks that want it (`WebhookRecorder`)."""

    async def record(self, body: bytes) -> int:
        """Record the event's deliveries; how many."""
        ...


class SendHandlers:
    def __init__(self, sender: SendRequests, webhooks: EventRecorder) -> None:
        self._sender = sender
        self._webhooks = webhooks

    async def on_send_requested(self, event: SendRequested) -> None:
        """Send the requested email from the user's own address, at most once."""
        outcome = await self._sender.handle(event.workspaceid, event.data.send_request_id)
        logger.info(
            "send request handled",
            extra={
                "workspace_id": event.workspaceid,
                "send_request_id": event.data.send_request_id,
                "outcome": outcome.result,
            },
        )

    async def on_public_event(self, message: Delivery) -> None:
        """Record a public event for each webhook subscription of its workspace that wants it."""
        await self._webhooks.record(message.body)


def send_router(handlers: SendHandlers) -> RabbitRouter:
    router = RabbitRouter()
    SEND_REQUESTS.subscriber(router, title="send.requested")(handlers.on_send_requested)
    # One event at a time: the deliveries are recorded in the order the events were published.
    # The queue's bindings follow the subscriptions (`mailsync_shared.webhooks.bindings`).
    router.subscriber(
        WEBHOOK_EVENTS_QUEUE,
        channel=WEBHOOK_EVENTS_CHANNEL,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=as_delivered,
        title="webhook events",
        description="The public events a webhook subscription wants, recorded for it.",
    )(handlers.on_public_event)
    return router
