"""Capture's router: fetched messages decoded and handed to `BatchCapture` in batches.

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

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from faststream.rabbit import RabbitBroker, RabbitRouter
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_capture.batch_capture import BatchCapture, stored_workspaces
from mailsync_shared.batching import Batcher
from mailsync_shared.capture_policy.rules import free_mail_domains
from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.deliveries import Delivery
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.shard_consumers import ShardConsumers
from mailsync_shared.storage.client import Document
from mailsync_shared.topology import CAPTURE_SHARDS
from mailsync_shared.work_batches import events_in, submit_delivery


def _itself(event: MessageFetched) -> MessageFetched:
    return event


class CaptureHandlers:
    """Capture's delivery handler: decode, then wait for the batch's outcome."""

    def __init__(
        self,
        capture: BatchCapture,
        retry_alone: Callable[[MessageFetched], Awaitable[None]],
        *,
        batch_size: int,
    ) -> None:
        self._batcher: Batcher[MessageFetched, None] = Batcher(capture.capture, max_size=batch_size)
        self._retry_alone = retry_alone

    async def on_message_fetched(self, message: Delivery) -> None:
        """Apply the workspace's contact rules to fetched messages and pass them on."""
        events = events_in(message.body, MessageFetched)
        await submit_delivery(self._batcher, events, _itself, self._retry_alone)


@dataclass(frozen=True)
class CaptureRouting:
    router: RabbitRouter
    shards: ShardConsumers


def capture_router(handlers: CaptureHandlers, db: AsyncDatabase[Document]) -> CaptureRouting:
    """Capture's subscribers, one per shard queue, consumed as the replica's leases allow."""
    router = RabbitRouter()
    shards = ShardConsumers(router, db, CAPTURE_SHARDS, handlers.on_message_fetched)
    return CaptureRouting(router, shards)


def register_handlers(
    broker: RabbitBroker,
    db: AsyncDatabase[Document],
    publisher: EventPublisher,
    *,
    batch_size: int = 200,
) -> ShardConsumers:
    capture = BatchCapture(stored_workspaces(db), publisher, free_mail_domains())
    handlers = CaptureHandlers(capture, publisher.publish, batch_size=batch_size)
    routing = capture_router(handlers, db)
    broker.include_router(routing.router)
    return routing.shards
