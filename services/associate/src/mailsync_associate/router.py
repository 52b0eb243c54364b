"""Associate's broker side: a router whose one handler decodes a shard queue's delivery and
hands it to the intake.

The work arrives in shard queues, one workspace always in the same shard, and this replica
consumes only the shards it holds a lease on (`mailsync_shared.shard_consumers`), so across
replicas too one workspace is logged by one process at a time.
"""

from faststream.rabbit import RabbitRouter
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_associate.intake import Intake
from mailsync_shared.contracts.mail import MessageCaptured
from mailsync_shared.contracts.outbound import EmailSent
from mailsync_shared.deliveries import Delivery
from mailsync_shared.messaging import PermanentError
from mailsync_shared.shard_consumers import ShardConsumers
from mailsync_shared.storage.client import Document
from mailsync_shared.topology import ASSOCIATE_SHARDS, Sharded
from mailsync_shared.work_batches import events_in


def associate_router(
    intake: Intake, db: AsyncDatabase[Document], *, sharded: Sharded = ASSOCIATE_SHARDS
) -> tuple[RabbitRouter, ShardConsumers]:
    """The router to include in the broker, and the consumers of its shards to start."""
    router = RabbitRouter()

    async def on_shard_delivery(message: Delivery) -> None:
        """Log the captured or sent messages of one delivery from a shard queue."""
        kind = message.raw_message.type
        if kind == MessageCaptured.event_type:
            await intake.log_captured(events_in(message.body, MessageCaptured))
        elif kind == EmailSent.event_type:
            await intake.log_sent(EmailSent.model_validate_json(message.body))
        else:
            raise PermanentError(f"associate does not log {kind!r} messages")

    return router, ShardConsumers(router, db, sharded, on_shard_delivery)
