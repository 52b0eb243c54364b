"""The associate service: logs captured and sent messages on threads linked to records."""

from functools import partial

from faststream.asgi import AsgiFastStream
from faststream.rabbit import RabbitBroker
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_associate.batch import StoreBatches
from mailsync_associate.batch_logbook import BatchLogbook
from mailsync_associate.intake import Intake
from mailsync_associate.router import associate_router
from mailsync_associate.sent_mail import SentRequests
from mailsync_associate.settings import Settings
from mailsync_shared.contracts.mail import MessageCaptured
from mailsync_shared.contracts.records import EmailLogged, ThreadAssociated
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.outbox_service import outbox_worker_app
from mailsync_shared.shard_consumers import ShardConsumers
from mailsync_shared.storage.client import Document


def register_handlers(
    broker: RabbitBroker,
    db: AsyncDatabase[Document],
    publisher: EventPublisher,
    *,
    batch_size: int = 200,
) -> ShardConsumers:
    """The domain classes over the store and the broker, and the router that feeds them."""
    intake = Intake(
        BatchLogbook(StoreBatches(db), publisher.publish_each),
        SentRequests(db).complete,
        publisher.publish,
        batch_size=batch_size,
    )
    router, shards = associate_router(intake, db)
    broker.include_router(router)
    return shards


def create_app(settings: Settings) -> AsgiFastStream:
    return outbox_worker_app(
        settings,
        title="Mailsync associate",
        events=[EmailLogged, ThreadAssociated, MessageCaptured],
        outbox_collection="threads",
        register_handlers=partial(register_handlers, batch_size=settings.batch_size),
    )
