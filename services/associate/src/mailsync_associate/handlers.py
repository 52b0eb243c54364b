"""Associate's handlers: captured and sent messages logged on threads linked to records."""

import logging

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_associate.events import email_logged, thread_associated
from mailsync_associate.logbook import Skipped, log_message
from mailsync_associate.repository import AssociateRepository
from mailsync_shared.contracts.mail import MailMessage, MessageCaptured
from mailsync_shared.contracts.outbound import EmailSent
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.serial import PerKeyLock
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.topology import ASSOCIATE_MESSAGES, ASSOCIATE_SENT

logger = logging.getLogger(__name__)


def register_handlers(
    broker: RabbitBroker, db: AsyncDatabase[Document], publisher: EventPublisher
) -> None:
    workspaces = PerKeyLock()

    async def log_and_announce(
        workspace_id: str, message: MailMessage, replied_thread_id: str | None = None
    ) -> None:
        repository = AssociateRepository(WorkspaceStore(db, workspace_id))
        async with workspaces.hold(workspace_id):
            logged = await log_message(repository, message, replied_thread_id=replied_thread_id)
            if isinstance(logged, Skipped):
                logger.info(
                    "message outside the client-only scope counted",
                    extra={
                        "workspace_id": workspace_id,
                        "mailbox_id": message.mailbox_id,
                        "message_id": message.message_id,
                    },
                )
                return
            if logged.publish:
                await publisher.publish(email_logged(workspace_id, logged))
                if logged.links_changed:
                    await publisher.publish(thread_associated(workspace_id, logged))
                await repository.mark_published(logged.stored)
        logger.info(
            "message logged" if logged.publish else "message copy recorded",
            extra={
                "workspace_id": workspace_id,
                "mailbox_id": message.mailbox_id,
                "message_id": message.message_id,
                "thread_id": logged.thread.id,
                "thread_rule": logged.rule,
                "links_changed": logged.links_changed,
            },
        )

    @broker.subscriber(
        ASSOCIATE_MESSAGES.queue,
        ASSOCIATE_MESSAGES.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="associate.message-captured",
    )
    async def on_message_captured(event: MessageCaptured) -> None:
        """Log a captured message on its thread and link the thread to records."""
        await log_and_announce(event.workspaceid, event.data.message)

    @broker.subscriber(
        ASSOCIATE_SENT.queue,
        ASSOCIATE_SENT.exchange,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        title="associate.email-sent",
    )
    async def on_email_sent(event: EmailSent) -> None:
        """Log a message sent through Mailsync at once, on the thread it replies on."""
        message = event.data.message.model_copy(
            update={"direction": "sent", "send_request_id": event.data.send_request_id}
        )
        await log_and_announce(event.workspaceid, message, event.data.thread_id)
