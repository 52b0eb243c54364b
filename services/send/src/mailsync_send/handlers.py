"""Send's handler: one send request carried out, or left to the scheduler for later."""

import logging

from faststream.rabbit import RabbitBroker

from mailsync_send.sender import Sender
from mailsync_shared.contracts.outbound import SendRequested
from mailsync_shared.topology import SEND_REQUESTS

logger = logging.getLogger(__name__)


def register_handlers(broker: RabbitBroker, sender: Sender) -> None:
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
