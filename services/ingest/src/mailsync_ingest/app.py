"""The ingest service: leases connected mailboxes and publishes every message it finds."""

from faststream.asgi import AsgiFastStream

from mailsync_ingest.mailbox_metrics import MailboxStates, SyncLag
from mailsync_ingest.settings import Settings
from mailsync_ingest.wakes import subscribe_wakes
from mailsync_ingest.worker import IngestWorker
from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.service import worker_app
from mailsync_shared.worker_wiring import WorkerWiring


def create_app(settings: Settings) -> AsgiFastStream:
    wiring = WorkerWiring.from_settings(settings)
    publisher = EventPublisher(wiring.broker, [MessageFetched])
    worker = IngestWorker(settings, wiring.db, publisher, SyncLag(wiring.metrics.registry))
    states = MailboxStates(worker.states, registry=wiring.metrics.registry)
    wakes = subscribe_wakes(wiring.broker, worker, settings)

    async def bind_wakes() -> None:
        await wakes.bind(wiring.broker)

    async def leasing() -> bool:
        return worker.alive()

    return worker_app(
        wiring.broker,
        metrics=wiring.metrics,
        readiness=wiring.readiness(leasing=leasing),
        on_startup=[wiring.prepare],
        after_startup=[bind_wakes, worker.start, states.start],
        on_shutdown=[states.stop, worker.stop],
        after_shutdown=[wiring.close_database],
        title="Mailsync ingest",
    )
