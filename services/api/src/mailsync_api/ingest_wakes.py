"""Telling ingest that a mailbox became claimable, so that a worker leases it at once."""

import asyncio
import logging

from mailsync_shared.contracts.mailboxes import (
    ClaimableBecause,
    ClaimableMailbox,
    MailboxClaimable,
)
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.storage.documents import MailboxDocument

logger = logging.getLogger(__name__)

SOURCE = "/mailsync/api"
# The longest a request waits for the broker to confirm a wake before answering without it.
WAKE_TIMEOUT_SECONDS = 2.0


async def wake_ingest(
    publisher: EventPublisher, mailbox: MailboxDocument, because: ClaimableBecause
) -> None:
    """Publish `MailboxClaimable` once the mailbox document is written. A hint only: when it
    cannot be published the request succeeds all the same, and the workers' periodic claim
    (`claim_interval_seconds`) finds the mailbox."""
    event = MailboxClaimable.create(
        source=SOURCE,
        workspace_id=mailbox.workspace_id,
        subject=mailbox.id,
        data=ClaimableMailbox(mailbox_id=mailbox.id, because=because),
    )
    try:
        async with asyncio.timeout(WAKE_TIMEOUT_SECONDS):
            await publisher.publish(event)
    except Exception as error:
        logger.warning(
            "ingest not woken; the mailbox waits for the workers' next periodic claim",
            extra={
                "workspace_id": mailbox.workspace_id,
                "mailbox_id": mailbox.id,
                "error": type(error).__name__,
            },
        )
