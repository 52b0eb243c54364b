"""Send's handler: one send request carried out, retried later when the failure may pass."""

import asyncio
import logging

from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker

from mailsync_send.sender import SOURCE, RetryLater, Sender
from mailsync_shared.contracts.outbound import SendRequested
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.topology import SEND_REQUESTS

logger = logging.getLogger(__name__)


def register_handlers(
    broker: RabbitBroker, sender: Sender, publisher: EventPublisher, *, prefetch: int
) -> None:
    @broker.subscriber(
        SEND_REQUESTS.queue,
        SEND_REQUESTS.exchange,
        channel=Channel(prefetch_count=prefetch),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="send.requested",
    )
    async def on_send_requested(event: SendRequested) -> None:
        """Send the requested email from the user's own address, at most once."""
        outcome = await sender.handle(event.workspaceid, event.data.send_request_id)
        if isinstance(outcome, RetryLater):
            # A fresh command (not a nack) so retries do not spend the queue's delivery limit,
            # which stays the guard against a request that crashes the service every time.
            await asyncio.sleep(outcome.delay)
            await publisher.publish(
                SendRequested.create(
                    source=SOURCE,
                    workspace_id=event.workspaceid,
                    data=event.data,
                    subject=event.subject,
                )
            )
        logger.info(
            "send request handled",
            extra={
                "workspace_id": event.workspaceid,
                "send_request_id": event.data.send_request_id,
                "outcome": type(outcome).__name__,
                "detail": getattr(outcome, "result", None) or getattr(outcome, "reason", None),
            },
        )
