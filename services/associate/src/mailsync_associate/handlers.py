"""Associate's handlers: captured and sent messages logged on threads linked to records.

A delivery of captured messages holds one or a batch of them
(`mailsync_shared.work_batches`). Messages are logged in batches per workspace
(`mailsync_shared.batching`): each delivery hands its messages to the workspace's batch and
waits for their outcomes, so the broker's ack still follows the messages' writes and events.
One workspace's batches are logged one at a time, in delivery order, each while the events
of the one before go out; workspaces run in parallel.

The work arrives in shard queues, one workspace always in the same shard, and this replica
consumes only the shards it holds a lease on (`mailsync_shared.shard_leases`), so across replicas
too one workspace is logged by one process at a time.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from faststream.rabbit import RabbitBroker
from faststream.rabbit.annotations import RabbitMessage
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailsync_associate.batch import BatchRepository
from mailsync_associate.events import email_logged, thread_associated
from mailsync_associate.logbook import Dropped, Logged, Skipped, log_message
from mailsync_associate.sent_mail import sent_message
from mailsync_shared.batching import Batcher
from mailsync_shared.contracts.envelope import Event
from mailsync_shared.contracts.mail import MailMessage, MessageCaptured
from mailsync_shared.contracts.outbound import EmailSent
from mailsync_shared.event_privacy import event_level
from mailsync_shared.messaging import EventPublisher, PermanentError
from mailsync_shared.shard_consumers import ShardConsumers
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.topology import ASSOCIATE_SHARDS
from mailsync_shared.work_batches import events_in, submit_delivery

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ToLog:
    message: MailMessage
    replied_thread_id: str | None = None


def register_handlers(
    broker: RabbitBroker,
    db: AsyncDatabase[Document],
    publisher: EventPublisher,
    *,
    batch_size: int = 200,
) -> ShardConsumers:
    announcing: dict[str, set[str]] = {}
    announced_before: dict[str, asyncio.Future[list[BaseException | None]]] = {}

    async def log_batch(
        workspace_id: str, items: Sequence[ToLog]
    ) -> Awaitable[list[BaseException | None]]:
        """Log a batch of one workspace's messages in order; returns their announcement.

        The next batch is logged while this one's events go out. Announcements of one
        workspace follow each other in batch order.
        """
        started = time.perf_counter()
        repository = BatchRepository(
            WorkspaceStore(db, workspace_id),
            announcing=frozenset(announcing.get(workspace_id, ())),
        )
        await repository.load([item.message for item in items])
        loaded = time.perf_counter()
        results: list[Logged | Skipped | Dropped | BaseException] = []
        for item in items:
            try:
                logged = await log_message(
                    repository, item.message, replied_thread_id=item.replied_thread_id
                )
            except Exception as error:
                results.append(error)
                continue
            if isinstance(logged, Logged) and logged.publish:
                repository.will_publish(logged.stored)
            results.append(logged)
        threaded = time.perf_counter()
        lost = await repository.flush()
        written = time.perf_counter()
        results = [
            DuplicateKeyError(f"message {result.stored.message_id} was stored by another writer")
            if isinstance(result, Logged) and result.stored.message_id in lost
            else result
            for result in results
        ]
        publishing = {r.stored.message_id for r in results if isinstance(r, Logged) and r.publish}
        announcing.setdefault(workspace_id, set()).update(publishing)
        timing = {
            "read": round(loaded - started, 3),
            "thread": round(threaded - loaded, 3),
            "write": round(written - threaded, 3),
        }
        after = announced_before.get(workspace_id)
        announcement = asyncio.ensure_future(
            announce_batch(workspace_id, results, repository, after, publishing, timing)
        )
        announced_before[workspace_id] = announcement

        def forget(_: object) -> None:
            if announced_before.get(workspace_id) is announcement:
                del announced_before[workspace_id]

        announcement.add_done_callback(forget)
        return announcement

    async def announce_batch(
        workspace_id: str,
        results: Sequence[Logged | Skipped | Dropped | BaseException],
        repository: BatchRepository,
        after: asyncio.Future[list[BaseException | None]] | None,
        publishing: set[str],
        timing: dict[str, float],
    ) -> list[BaseException | None]:
        """Publish the batch's events, after the previous batch's, and record them as out."""
        try:
            if after is not None:
                await asyncio.wait([after])  # its outcome is for its own batch
            started = time.perf_counter()
            announced = await asyncio.gather(
                *(announce(workspace_id, r, repository) for r in results if isinstance(r, Logged)),
                return_exceptions=True,
            )
            outcomes = iter(announced)
            final: list[BaseException | None] = []
            published: list[str] = []
            for result in results:
                if isinstance(result, BaseException):
                    final.append(result)
                elif isinstance(result, Skipped):
                    final.append(None)
                    note_skipped(workspace_id, result.message)
                elif isinstance(result, Dropped):
                    final.append(None)
                    logger.info(
                        "message of a disconnected or erased mailbox dropped",
                        extra={
                            "workspace_id": workspace_id,
                            "mailbox_id": result.message.mailbox_id,
                            "message_id": result.message.message_id,
                        },
                    )
                else:
                    outcome = next(outcomes)
                    final.append(outcome)
                    if outcome is None and result.publish:
                        published.append(result.stored.message_id)
            await repository.mark_all_published(published)
        finally:
            # Marked first, then let go: a later batch either sees the mark or this set.
            pending = announcing.get(workspace_id, set())
            pending -= publishing
            if not pending:
                announcing.pop(workspace_id, None)
        logger.info(
            "batch logged",
            extra={
                "workspace_id": workspace_id,
                "messages": len(results),
                "failed": sum(outcome is not None for outcome in final),
                "seconds": {**timing, "announce": round(time.perf_counter() - started, 3)},
            },
        )
        return final

    async def announce(workspace_id: str, logged: Logged, repository: BatchRepository) -> None:
        if logged.publish:
            event = email_logged(workspace_id, logged)
            visibility = await repository.mailbox_visibility(event.data.mailbox_id)
            level = event_level(visibility, private_thread=logged.thread.private)
            events: list[Event] = [event]
            if logged.links_changed:
                events.append(thread_associated(workspace_id, logged))
            await asyncio.gather(*(publisher.publish(event, level=level) for event in events))
        logger.info(
            "message logged" if logged.publish else "message copy recorded",
            extra={
                "workspace_id": workspace_id,
                "mailbox_id": logged.message.mailbox_id,
                "message_id": logged.message.message_id,
                "thread_id": logged.thread.id,
                "thread_rule": logged.rule,
                "links_changed": logged.links_changed,
            },
        )

    def note_skipped(workspace_id: str, message: MailMessage) -> None:
        logger.info(
            "message outside the client-only scope counted",
            extra={
                "workspace_id": workspace_id,
                "mailbox_id": message.mailbox_id,
                "message_id": message.message_id,
            },
        )

    batcher: Batcher[ToLog, None] = Batcher.in_two_stages(log_batch, max_size=batch_size)

    async def on_message_captured(events: list[MessageCaptured]) -> None:
        """Log captured messages on their threads and link the threads to records."""
        await submit_delivery(
            batcher, events, lambda event: ToLog(event.data.message), publisher.publish
        )

    async def on_email_sent(event: EmailSent) -> None:
        """Log a message sent through Mailsync at once, on the thread it replies on."""
        published = event.data.message.model_copy(
            update={"direction": "sent", "send_request_id": event.data.send_request_id}
        )
        store = WorkspaceStore(db, event.workspaceid)
        message = await sent_message(store, published, event.data.send_request_id)
        await batcher.submit(event.workspaceid, ToLog(message, event.data.thread_id))

    async def on_shard_delivery(message: RabbitMessage) -> None:
        """Log the captured or sent messages of one delivery from a shard queue."""
        kind = message.raw_message.type
        if kind == MessageCaptured.event_type:
            await on_message_captured(events_in(message.body, MessageCaptured))
        elif kind == EmailSent.event_type:
            await on_email_sent(EmailSent.model_validate_json(message.body))
        else:
            raise PermanentError(f"associate does not log {kind!r} messages")

    return ShardConsumers(broker, db, ASSOCIATE_SHARDS, on_shard_delivery)
