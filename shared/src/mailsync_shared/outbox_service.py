"""A worker service whose handlers write an outbox: broker, database, handlers and relay."""

from collections.abc import Callable, Sequence

from faststream.asgi import AsgiFastStream
from faststream.rabbit import RabbitBroker
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.contracts.envelope import Event
from mailsync_shared.messaging import DeadLetterPermanentErrors, EventPublisher
from mailsync_shared.outbox import outbox_relay
from mailsync_shared.service import broker_connected, worker_app
from mailsync_shared.settings import ServiceSettings
from mailsync_shared.storage.client import Document, connect, database, ping
from mailsync_shared.storage.indexes import ensure_indexes
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore
from mailsync_shared.topology import declare_topology

RegisterHandlers = Callable[[RabbitBroker, AsyncDatabase[Document], EventPublisher], None]


def outbox_worker_app(
    settings: ServiceSettings,
    *,
    outbox_relay_seconds: float,
    title: str,
    events: Sequence[type[Event]],
    outbox_collection: str,
    register_handlers: RegisterHandlers,
) -> AsgiFastStream:
    """Wire a service whose writes carry pending events in `outbox_collection` documents.

    The relay re-publishes events that a crash left between the write and the publish.
    """
    broker = RabbitBroker(settings.rabbitmq_url, middlewares=[DeadLetterPermanentErrors])
    client = connect(settings)
    db = database(client, settings)
    publisher = EventPublisher(broker, events)
    register_handlers(broker, db, publisher)
    relay = outbox_relay(
        SystemCollections(db),
        lambda workspace_id: WorkspaceStore(db, workspace_id),
        outbox_collection,
        publisher.publish,
        every=outbox_relay_seconds,
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
        title=title,
    )
