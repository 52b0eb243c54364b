"""What every worker service connects to: its broker and database, prepared, checked, closed.

On shutdown the broker stops first and gives the deliveries in progress up to
`SHUTDOWN_GRACE_SECONDS` to finish their writes and events; the database is closed after it
(`close_database` is an after-shutdown hook), so they never meet a closed client.
"""

from dataclasses import dataclass

from faststream.rabbit import Channel, RabbitBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.messaging import DeadLetterPermanentErrors
from mailsync_shared.metrics import ServiceMetrics
from mailsync_shared.service import ReadinessCheck, broker_connected
from mailsync_shared.settings import ServiceSettings
from mailsync_shared.storage.client import Document, connect, database, ping
from mailsync_shared.storage.indexes import ensure_indexes
from mailsync_shared.topology import declare_topology
from mailsync_shared.tracing import broker_tracing

SHUTDOWN_GRACE_SECONDS = 10.0


@dataclass(frozen=True)
class WorkerWiring:
    broker: RabbitBroker
    client: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    metrics: ServiceMetrics

    @classmethod
    def from_settings(
        cls,
        settings: ServiceSettings,
        *,
        prefetch: int | None = None,
        public_events_from: str | None = None,
    ) -> "WorkerWiring":
        """A broker that dead-letters permanent errors, and the configured database.

        `prefetch` is how many unacknowledged deliveries each of the service's subscribers
        holds. It is set on the broker's channel, which the queues declared at start
        (`declare_topology`) and so the subscribers on them use. `public_events_from`: the
        queue of its own the service takes public events off, which its metrics name
        (`metrics.queue_of`).
        """
        metrics = ServiceMetrics(public_events_from=public_events_from)
        broker = RabbitBroker(
            settings.rabbitmq_url,
            middlewares=[
                broker_tracing(),
                metrics.broker_middleware(),
                DeadLetterPermanentErrors,
                metrics.dead_letter_counter(),
            ],
            graceful_timeout=SHUTDOWN_GRACE_SECONDS,
            default_channel=Channel(prefetch_count=prefetch),
        )
        client = connect(settings)
        return cls(broker, client, database(client, settings), metrics)

    async def prepare(self) -> None:
        """Indexes in place, broker connected, queues and exchanges declared."""
        await ensure_indexes(self.db)
        await self.broker.connect()
        await declare_topology(self.broker)

    def readiness(self, **more: ReadinessCheck) -> dict[str, ReadinessCheck]:
        async def database_answers() -> bool:
            return await ping(self.db)

        return {"broker": broker_connected(self.broker), "database": database_answers, **more}

    async def close_database(self) -> None:
        await self.client.close()
