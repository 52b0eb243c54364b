"""The send service: consumes send requests, relays them, publishes what happened."""

from datetime import timedelta

from faststream.asgi import AsgiFastStream
from faststream.rabbit import RabbitBroker

from mailsync_send.handlers import register_handlers
from mailsync_send.scheduler import Scheduler
from mailsync_send.sender import Sender
from mailsync_send.settings import Settings
from mailsync_shared.contracts.outbound import EmailSendFailed, EmailSent, SendRequested
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.messaging import DeadLetterPermanentErrors, EventPublisher
from mailsync_shared.service import broker_connected, worker_app
from mailsync_shared.storage.client import connect, database, ping
from mailsync_shared.storage.indexes import ensure_indexes
from mailsync_shared.topology import declare_topology


def create_app(settings: Settings) -> AsgiFastStream:
    broker = RabbitBroker(settings.rabbitmq_url, middlewares=[DeadLetterPermanentErrors])
    client = connect(settings)
    db = database(client, settings)
    publisher = EventPublisher(broker, [EmailSent, EmailSendFailed, SendRequested])
    sender = Sender(db, publisher, CredentialCipher(settings.secret_key), settings)
    register_handlers(broker, sender, prefetch=settings.prefetch)
    scheduler = Scheduler(
        db,
        publisher,
        interval=settings.scheduler_interval_seconds,
        redispatch_after=timedelta(seconds=settings.redispatch_after_seconds),
        claim_timeout=timedelta(seconds=settings.claim_timeout_seconds),
    )

    async def prepare() -> None:
        await ensure_indexes(db)
        await broker.connect()
        await declare_topology(broker)

    async def database_answers() -> bool:
        return await ping(db)

    async def close_database() -> None:
        await scheduler.stop()
        await sender.close()
        await client.close()

    return worker_app(
        broker,
        readiness={"broker": broker_connected(broker), "database": database_answers},
        on_startup=[prepare],
        after_startup=[scheduler.start],
        on_shutdown=[close_database],
        title="Mailsync send",
    )
