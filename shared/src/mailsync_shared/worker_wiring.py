"""What every worker service connects to: its broker and database, prepared, checked, closed."""

from dataclasses import dataclass

from faststream.rabbit import RabbitBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.messaging import DeadLetterPermanentErrors
from mailsync_shared.service import ReadinessCheck, broker_connected
from mailsync_shared.settings import ServiceSettings
from mailsync_shared.storage.client import Document, connect, database, ping
from mailsync_shared.storage.indexes import ensure_indexes
from mailsync_shared.topology import declare_topology


@dataclass(frozen=True)
class WorkerWiring:
    broker: RabbitBroker
    client: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> "WorkerWiring":
        """A broker that dead-letters permanent errors, and the configured database."""
        broker = RabbitBroker(settings.rabbitmq_url, middlewares=[DeadLetterPermanentErrors])
        client = connect(settings)
        return cls(broker, client, database(client, settings))

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
