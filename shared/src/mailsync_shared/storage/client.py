"""Connecting to the MongoDB-compatible server."""

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.settings import ServiceSettings

Document = dict[str, Any]


# Commands in flight per service. FerretDB v1 over SQLite takes up to two connections per
# update from a pool of 100 per database; a hundred concurrent updates would wait for each
# other forever.
MAX_CONNECTIONS = 32


def connect(settings: ServiceSettings) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        settings.mongodb_url,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        maxPoolSize=MAX_CONNECTIONS,
    )


def database(
    client: AsyncMongoClient[Document], settings: ServiceSettings
) -> AsyncDatabase[Document]:
    return client[settings.mongodb_database]


async def ping(db: AsyncDatabase[Document]) -> bool:
    try:
        await db.command("ping")
    except Exception:
        return False
    return True
