"""The ingest service: leases connected mailboxes and publishes every message it finds."""

from faststream.asgi import AsgiFastStream
from faststream.rabbit import RabbitBroker

from mailsync_ingest.settings import Settings
from mailsync_ingest.worker import IngestWorker
from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.service import broker_connected, worker_app
from mailsync_shared.storage.client import connect, database, ping
from mailsync_shared.storage.indexes import ensure_indexes
from mailsync_shared.topology import declare_topology


def create_app(settings: Settings) -> AsgiFastStream:
    broker = RabbitBroker(settings.rabbitmq_url)
    client = connect(settings)
    db = database(client, settings)
    publisher = EventPublisher(broker, [MessageFetched])
    worker = IngestWorker(settings, db, publisher)

    async def prepare() -> None:
        await ensure_indexes(db)
        await broker.connect()
        await declare_topology(broker)

    async def database_answers() -> bool:
        return await ping(db)

    async def leasing() -> bool:
        return worker.alive()

    async def close_database() -> None:
        await client.close()

    return worker_app(
        broker,
        readiness={
            "broker": broker_connected(broker),
            "database": database_answers,
            "leasing": leasing,
        },
        on_startup=[prepare],
        after_startup=[worker.start],
        on_shutdown=[worker.stop, close_database],
        title="Mailsync ingest",
    )
