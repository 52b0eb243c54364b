"""From fetched bytes to published `MessageFetched` events: limit, store, extract headers, publish.

A batch is stored with one unordered insert and its events published together (JSON arrays,
`mailsync_shared.work_batches`), so the rate is bound by the broker and the store, not by
round trips or deliveries per message.
"""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from mailsync_ingest.headers import MessageContext, mail_message, synthetic_message_id
from mailsync_ingest.imap_connection import FetchedMessage
from mailsync_ingest.limits import Inspection, Limits, inspect_message
from mailsync_shared.contracts.mail import MailMessage, MailSource, MessageFetched
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.storage.raw_messages import store_raw_many
from mailsync_shared.storage.scoped import WorkspaceStore

SOURCE = "/mailsync/ingest"
_EVENT_NAMESPACE = uuid.UUID("0c3b8f52-54a1-4f38-9a51-6d61696c696e")

logger = logging.getLogger(__name__)


def event_id(source: MailSource) -> str:
    """The same event id for the same folder copy, so consumers can drop re-publications."""
    key = f"{source.mailbox_id}\x1f{source.folder}\x1f{source.uidvalidity}\x1f{source.uid}"
    return uuid.uuid5(_EVENT_NAMESPACE, key).hex


@dataclass(frozen=True)
class MessagePipeline:
    store: WorkspaceStore
    publisher: EventPublisher
    limits: Limits
    mailbox_id: str
    owner_address: str

    async def ingest(self, fetched: FetchedMessage, source: MailSource) -> MailMessage:
        """Store one message's bytes and publish its header facts; returns what was published."""
        outcome = (await self.ingest_batch([(fetched, source)]))[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def ingest_batch(
        self, items: Sequence[tuple[FetchedMessage, MailSource]]
    ) -> list[MailMessage | BaseException]:
        """Store a batch's bytes in one write, then publish its events together; per message,
        what was published or why it was not.

        A failed raw write fails the whole batch (nothing is published without its bytes), and
        so does a failed publish.
        """
        inspections = [inspect_message(fetched.body, self.limits) for fetched, _ in items]
        raw_ids = await store_raw_many(self.store, [inspection.data for inspection in inspections])
        messages = [
            self._message(fetched, source, raw_id, inspection)
            for (fetched, source), raw_id, inspection in zip(
                items, raw_ids, inspections, strict=True
            )
        ]
        events = [
            MessageFetched.create(
                source=SOURCE,
                workspace_id=self.store.workspace_id,
                data=message,
                subject=message.raw_id,
            ).model_copy(update={"id": event_id(source)})
            for message, (_, source) in zip(messages, items, strict=True)
        ]
        try:
            await self.publisher.publish_together(events)
        except Exception as error:
            return [error for _ in messages]
        return list(messages)

    def _message(
        self, fetched: FetchedMessage, source: MailSource, raw_id: str, inspection: Inspection
    ) -> MailMessage:
        context = MessageContext(self.mailbox_id, self.owner_address, source)
        try:
            message = mail_message(
                inspection.header_block,
                context=context,
                raw_id=raw_id,
                size=fetched.size,
                internal_date=fetched.internal_date,
                max_addresses=self.limits.max_addresses,
                max_header_value_bytes=self.limits.max_header_bytes,
                body=inspection.data[len(inspection.header_block) :],
                defects=inspection.defects,
                provider_thread_id=fetched.provider_thread_id,
                provider_message_id=fetched.provider_message_id,
            )
        except Exception as error:
            logger.warning(
                "headers unreadable; publishing without them",
                extra={**self._ids(), "uid": source.uid, "error": type(error).__name__},
            )
            message = self._without_headers(fetched, source, raw_id, inspection.defects, error)
        if inspection.defects:
            logger.warning(
                "message over limits",
                extra={**self._ids(), "uid": source.uid, "defects": list(inspection.defects)},
            )
        return message

    def _without_headers(
        self,
        fetched: FetchedMessage,
        source: MailSource,
        raw_id: str,
        defects: tuple[str, ...],
        error: Exception,
    ) -> MailMessage:
        return MailMessage(
            mailbox_id=self.mailbox_id,
            owner_address=self.owner_address.lower(),
            direction="sent" if source.folder_role == "sent" else "received",
            source=source,
            raw_id=raw_id,
            size=fetched.size,
            message_id=synthetic_message_id(raw_id),
            date=fetched.internal_date,
            defects=[*defects, "headers_unreadable"],
        )

    def _ids(self) -> dict[str, str]:
        return {"workspace_id": self.store.workspace_id, "mailbox_id": self.mailbox_id}
