"""Capture's message handler: rules applied, contacts created, the message passed on."""

import logging

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_capture.events import contact_captured, message_captured
from mailsync_shared.capture_policy.capturing import capture_contacts
from mailsync_shared.capture_policy.repository import CaptureRepository
from mailsync_shared.capture_policy.rules import free_mail_domains
from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.serial import PerKeyLock
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore
from mailsync_shared.topology import CAPTURE_MESSAGES

logger = logging.getLogger(__name__)


def register_handlers(
    broker: RabbitBroker, db: AsyncDatabase[Document], publisher: EventPublisher
) -> None:
    workspaces = PerKeyLock()

    @broker.subscriber(
        CAPTURE_MESSAGES.queue,
        CAPTURE_MESSAGES.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="capture.message-fetched",
    )
    async def on_message_fetched(event: MessageFetched) -> None:
        """Apply the workspace's contact rules to a fetched message and pass it on."""
        repository = CaptureRepository(WorkspaceStore(db, event.workspaceid), SystemCollections(db))
        async with workspaces.hold(event.workspaceid):
            result = await capture_contacts(repository, event.data, free_mail_domains())
            for new in result.new_contacts:
                await publisher.publish(contact_captured(event, new))
            await publisher.publish(message_captured(event, result))
        logger.info(
            "message captured",
            extra={
                "workspace_id": event.workspaceid,
                "mailbox_id": event.data.mailbox_id,
                "message_id": event.data.message_id,
                "contacts_created": len(result.new_contacts),
            },
        )
