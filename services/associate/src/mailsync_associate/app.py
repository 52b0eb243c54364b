"""The associate service: logs captured and sent messages on threads linked to records."""

from faststream.asgi import AsgiFastStream
from faststream.rabbit import RabbitBroker

from mailsync_associate.handlers import register_handlers
from mailsync_associate.settings import Settings
from mailsync_shared.contracts.records import EmailLogged, ThreadAssociated
from mailsync_shared.messaging import DeadLetterPermanentErrors, EventPublisher
from mailsync_shared.outbox import OutboxRelay
from mailsync_shared.service import broker_connected, worker_app
from mailsync_shared.storage.client import connect, database, ping
from mailsync_shared.storage.indexes import ensure_indexes
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore
from mailsync_shared.topology import declare_topology


def create_app(settings: Settings) -> AsgiFastStream:
    broker = RabbitBroker(settings.rabbitmq_url, middlewares=[DeadLetterPermanentErrors])
    client = connect(settings)
    db = database(client, settings)
    publisher = EventPublisher(broker, [EmailLogged, ThreadAssociated])
    register_handlers(broker, db, publisher)
    relay = OutboxRelay(
        SystemCollections(db),
        lambda workspace_id: WorkspaceStore(db, workspace_id),
        "threads",
        publisher.publish,
        every=settings.outbox_relay_seconds,
    )

    async def prepare() -> None:
        await ensure_indexes(db)
        await broker.connect()
        await declare_topology(broker)
        await relay.start()

    async def database_answers() -> bool:
        return await ping(db)

    async def close_database() -> None:
        await relay.stop()
        await client.close()

    return worker_app(
        broker,
        readiness={"broker": broker_connected(broker), "database": database_answers},
        on_startup=[prepare],
        on_shutdown=[close_database],
        title="Mailsync associate",
    )
