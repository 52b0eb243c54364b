"""The ingest service: leases connected mailboxes and publishes every message it finds."""

from faststream.asgi import AsgiFastStream

from mailsync_ingest.settings import Settings
from mailsync_ingest.worker import IngestWorker
from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.service import worker_app
from mailsync_shared.worker_wiring import WorkerWiring


def create_app(settings: Settings) -> AsgiFastStream:
    wiring = WorkerWiring.from_settings(settings)
    publisher = EventPublisher(wiring.broker, [MessageFetched])
    worker = IngestWorker(settings, wiring.db, publisher)

    async def leasing() -> bool:
        return worker.alive()

    return worker_app(
        wiring.broker,
        readiness=wiring.readiness(leasing=leasing),
        on_startup=[wiring.prepare],
        after_startup=[worker.start],
        on_shutdown=[worker.stop],
        after_shutdown=[wiring.close_database],
        title="Mailsync ingest",
    )
