"""Send's handler: one send request carried out, or left to the scheduler for later."""

import logging

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage

from mailsync_send.sender import Sender
from mailsync_send.webhooks.recorder import WebhookRecorder
from mailsync_shared.contracts.outbound import SendRequested
from mailsync_shared.topology import SEND_REQUESTS, WEBHOOK_EVENTS_CHANNEL, WEBHOOK_EVENTS_QUEUE

logger = logging.getLogger(__name__)


def register_handlers(broker: RabbitBroker, sender: Sender, webhooks: WebhookRecorder) -> None:
    @SEND_REQUESTS.subscriber(broker, title="send.requested")
    async def on_send_requested(event: SendRequested) -> None:
        """Send the requested email from the user's own address, at most once."""
        outcome = await sender.handle(event.workspaceid, event.data.send_request_id)
        logger.info(
            "send request handled",
            extra={
                "workspace_id": event.workspaceid,
                "send_request_id": event.data.send_request_id,
                "outcome": outcome.result,
            },
        )

    # One event at a time: the deliveries are recorded in the order the events were published.
    # The queue's bindings follow the subscriptions (`mailsync_shared.webhooks.bindings`).
    @broker.subscriber(
        WEBHOOK_EVENTS_QUEUE,
        channel=WEBHOOK_EVENTS_CHANNEL,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="webhook events",
        description="The public events a webhook subscription wants, recorded for it.",
    )
    async def on_public_event(message: RabbitMessage) -> None:
        """Record a public event for each webhook subscription of its workspace that wants it."""
        await webhooks.record(message.body)
