"""From fetched bytes to published `MessageFetched` events: limit, store, extract headers, publish.

A batch is stored with one unordered insert and its events published together (JSON arrays,
`mailsync_shared.work_batches`), so the rate is bound by the broker and the store, not by
round trips or deliveries per message.

A message over `max_message_bytes`, or one whose bytes the store refuses for good (not a lost
connection), is recorded in `unstored_mail` with the reason and counts as done, so the folder
moves on; nothing is published for it.
"""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from pymongo.errors import ConnectionFailure, DocumentTooLarge, OperationFailure

from mailsync_ingest.headers import MessageContext, mail_message, synthetic_message_id
from mailsync_ingest.imap_connection import FetchedMessage
from mailsync_ingest.limits import Inspection, Limits, inspect_message
from mailsync_shared.contracts.mail import MailMessage, MailSource, MessageFetched
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.storage.raw_messages import store_raw, store_raw_many
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.storage.unstored_mail import UnstoredMail, record_unstored, unstored

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

    async def ingest_batch(
        self, items: Sequence[tuple[FetchedMessage, MailSource]]
    ) -> list[MailMessage | UnstoredMail | BaseException]:
        """Store a batch's bytes in one write, then publish its events together; per message,
        what was published, that it was recorded as not stored, or why neither happened.

        A raw write that fails for a reason that may pass (a lost connection) fails the whole
        batch (nothing is published without its bytes), and so does a failed publish.
        """
        outcomes: list[MailMessage | UnstoredMail | BaseException | None] = [None] * len(items)
        kept: list[int] = []
        skipped: list[UnstoredMail] = []
        for index, (fetched, source) in enumerate(items):
            size = max(fetched.size, len(fetched.body))
            if size > self.limits.max_bytes:
                detail = f"{size} bytes; max_message_bytes is {self.limits.max_bytes}"
                skipped.append(unstored(source, size, "too_large", detail))
                outcomes[index] = skipped[-1]
            else:
                kept.append(index)
        inspections = {index: inspect_message(items[index][0].body, self.limits) for index in kept}
        raw_ids = await self._store_raw(items, inspections, skipped, outcomes)
        if skipped:
            await record_unstored(self.store, skipped)
            logger.warning(
                "messages not stored",
                extra={
                    **self._ids(),
                    "unstored": [(e.folder, e.uid, e.reason, e.detail) for e in skipped],
                },
            )
        published = [index for index in kept if index in raw_ids]
        messages = [
            self._message(items[index][0], items[index][1], raw_ids[index], inspections[index])
            for index in published
        ]
        sources = [items[index][1] for index in published]
        events = [
            MessageFetched.create(
                source=SOURCE,
                workspace_id=self.store.workspace_id,
                data=message,
                subject=message.raw_id,
            ).model_copy(update={"id": event_id(source)})
            for message, source in zip(messages, sources, strict=True)
        ]
        try:
            if events:
                await self.publisher.publish_together(events)
        except Exception as error:
            for index in published:
                outcomes[index] = error
        else:
            for index, message in zip(published, messages, strict=True):
                outcomes[index] = message
        done = [outcome for outcome in outcomes if outcome is not None]
        assert len(done) == len(items), "every message has an outcome"
        return done

    async def _store_raw(
        self,
        items: Sequence[tuple[FetchedMessage, MailSource]],
        inspections: dict[int, Inspection],
        skipped: list[UnstoredMail],
        outcomes: list[MailMessage | UnstoredMail | BaseException | None],
    ) -> dict[int, str]:
        """The raw id of each message stored; when the batch's write is refused, each message is
        written alone, and one the store refuses for good is recorded as not stored."""
        indexes = list(inspections)
        try:
            ids = await store_raw_many(self.store, [inspections[i].data for i in indexes])
            return dict(zip(indexes, ids, strict=True))
        except Exception as error:
            if not refused_for_good(error):
                raise
        stored: dict[int, str] = {}
        for index in indexes:
            try:
                stored[index] = await store_raw(self.store, inspections[index].data)
            except Exception as error:
                if not refused_for_good(error):
                    raise
                fetched, source = items[index]
                skipped.append(
                    unstored(
                        source, fetched.size, "store_refused", f"{type(error).__name__}: {error}"
                    )
                )
                outcomes[index] = skipped[-1]
        return stored

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


def refused_for_good(error: BaseException) -> bool:
    """A write error that a retry would meet again (too large, invalid), not a lost connection."""
    return isinstance(error, DocumentTooLarge | OperationFailure) and not isinstance(
        error, ConnectionFailure
    )
