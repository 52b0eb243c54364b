"""Capture's message handler: rules applied, contacts created, the message passed on.

A delivery holds one fetched message or a batch of them (`mailsync_shared.work_batches`).
Messages are captured in batches per workspace (`mailsync_shared.batching`): each delivery
hands its messages to the workspace's batch and waits for their outcomes, so the broker's
ack still follows the messages' writes and events. One workspace's batches run one at a
time; within a batch the messages are decided in delivery order and their
`message.captured` events published together in that order, so associate receives one
workspace's messages in the order ingest published them. Workspaces run in parallel.

The work arrives in shard queues, one workspace always in the same shard, and this replica
consumes only the shards it holds a lease on (`mailsync_shared.shard_leases`): with several
replicas too, one workspace's messages are captured by one process at a time, in order.
"""

import asyncio
import logging
from collections.abc import Mapping, Sequence

from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_capture.events import contact_captured, message_captured
from mailsync_shared.association.scope import mailbox_flags, stopped
from mailsync_shared.batching import Batcher
from mailsync_shared.capture_policy.batch import BatchCaptureRepository
from mailsync_shared.capture_policy.capturing import CaptureResult, capture_contacts
from mailsync_shared.capture_policy.rules import free_mail_domains
from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.event_privacy import event_level, visibility_of
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.shard_consumers import ShardConsumers
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import Visibility
from mailsync_shared.storage.raw_messages import delete_unused_raw
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore
from mailsync_shared.topology import CAPTURE_SHARDS
from mailsync_shared.work_batches import events_in, submit_delivery

logger = logging.getLogger(__name__)


def register_handlers(
    broker: RabbitBroker,
    db: AsyncDatabase[Document],
    publisher: EventPublisher,
    *,
    batch_size: int = 200,
) -> ShardConsumers:
    async def capture_batch(
        workspace_id: str, events: Sequence[MessageFetched]
    ) -> list[BaseException | None]:
        """Decide a batch of one workspace's messages in order, write, then announce them."""
        store = WorkspaceStore(db, workspace_id)
        flags = await mailbox_flags(store, (event.data.mailbox_id for event in events))
        stopped_mailboxes = {mailbox_id for mailbox_id, doc in flags.items() if stopped(doc)}
        levels = {mailbox_id: visibility_of(doc) for mailbox_id, doc in flags.items()}
        dropped = [event for event in events if event.data.mailbox_id in stopped_mailboxes]
        if dropped:
            await drop(store, dropped)
        wanted = [event for event in events if event.data.mailbox_id not in stopped_mailboxes]
        repository = BatchCaptureRepository(store, SystemCollections(db))
        await repository.load([event.data for event in wanted])
        results: list[CaptureResult | BaseException] = []
        for event in wanted:
            try:
                results.append(await capture_contacts(repository, event.data, free_mail_domains()))
            except Exception as error:
                results.append(error)
        await repository.write_decisions()
        outcomes = iter(await announce(wanted, results, levels))
        return [
            None if event.data.mailbox_id in stopped_mailboxes else next(outcomes)
            for event in events
        ]

    async def drop(store: WorkspaceStore, dropped: Sequence[MessageFetched]) -> None:
        """Messages of a mailbox disconnected or erased since they were fetched: not captured
        and not passed on; their raw bytes go unless a stored message names them."""
        await delete_unused_raw(store, [event.data.raw_id for event in dropped])
        for event in dropped:
            logger.info(
                "message of a disconnected or erased mailbox dropped",
                extra={
                    "workspace_id": event.workspaceid,
                    "mailbox_id": event.data.mailbox_id,
                    "message_id": event.data.message_id,
                },
            )

    async def announce(
        events: Sequence[MessageFetched],
        results: Sequence[CaptureResult | BaseException],
        levels: Mapping[str, Visibility],
    ) -> list[BaseException | None]:
        """The new contacts' events all at once, then each message's event in order."""
        outcomes: list[BaseException | None] = [
            result if isinstance(result, BaseException) else None for result in results
        ]
        contact_events = [
            (index, contact_captured(events[index], new))
            for index, result in enumerate(results)
            if isinstance(result, CaptureResult)
            for new in result.new_contacts
        ]
        published = await asyncio.gather(
            *(
                publisher.publish(event, level=event_level(levels.get(event.data.mailbox_id)))
                for _, event in contact_events
            ),
            return_exceptions=True,
        )
        for (index, _), failure in zip(contact_events, published, strict=True):
            if isinstance(failure, BaseException) and outcomes[index] is None:
                outcomes[index] = failure
        captured = [
            (index, event, result)
            for index, (event, result) in enumerate(zip(events, results, strict=True))
            if outcomes[index] is None and isinstance(result, CaptureResult)
        ]
        try:
            await publisher.publish_together(
                [message_captured(event, result) for _, event, result in captured]
            )
        except Exception as error:
            for index, _, _ in captured:
                outcomes[index] = error
            return outcomes
        for _, event, result in captured:
            logger.info(
                "message captured",
                extra={
                    "workspace_id": event.workspaceid,
                    "mailbox_id": event.data.mailbox_id,
                    "message_id": event.data.message_id,
                    "contacts_created": len(result.new_contacts),
                },
            )
        return outcomes

    batcher: Batcher[MessageFetched, None] = Batcher(capture_batch, max_size=batch_size)

    async def on_message_fetched(message: RabbitMessage) -> None:
        """Apply the workspace's contact rules to fetched messages and pass them on."""
        events = events_in(message.body, MessageFetched)
        await submit_delivery(batcher, events, lambda event: event, publisher.publish)

    return ShardConsumers(broker, db, CAPTURE_SHARDS, on_message_fetched)
