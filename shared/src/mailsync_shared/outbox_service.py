"""A worker service whose handlers write an outbox: broker, database, handlers and relay."""

from collections.abc import Callable, Sequence
from typing import Protocol

from faststream.asgi import AsgiFastStream
from faststream.rabbit import RabbitBroker
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.contracts.envelope import Event
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.outbox import outbox_relay
from mailsync_shared.service import worker_app
from mailsync_shared.settings import OutboxWorkerSettings
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore
from mailsync_shared.worker_wiring import WorkerWiring


class Consuming(Protocol):
    """Subscribers a service starts once its broker runs, and stops before it closes."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


RegisterHandlers = Callable[
    [RabbitBroker, AsyncDatabase[Document], EventPublisher], Consuming | None
]


def outbox_worker_app(
    settings: OutboxWorkerSettings,
    *,
    title: str,
    events: Sequence[type[Event]],
    outbox_collection: str,
    register_handlers: RegisterHandlers,
) -> AsgiFastStream:
    """Wire a service whose writes carry pending events in `outbox_collection` documents.

    The relay re-publishes events that a crash left between the write and the publish.
    """
    wiring = WorkerWiring.from_settings(settings, prefetch=settings.prefetch)
    publisher = EventPublisher(wiring.broker, events)
    consuming = register_handlers(wiring.broker, wiring.db, publisher)
    relay = outbox_relay(
        SystemCollections(wiring.db),
        lambda workspace_id: WorkspaceStore(wiring.db, workspace_id),
        outbox_collection,
        publisher.publish,
        every=settings.outbox_relay_seconds,
    )

    return worker_app(
        wiring.broker,
        metrics=wiring.metrics,
        readiness=wiring.readiness(),
        on_startup=[wiring.prepare, relay.start],
        after_startup=[] if consuming is None else [consuming.start],
        on_shutdown=[relay.stop] if consuming is None else [consuming.stop, relay.stop],
        after_shutdown=[wiring.close_database],
        title=title,
    )
