"""Connecting to the MongoDB-compatible server."""

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.settings import ServiceSettings
from mailsync_shared.storage.ferretdb import use

Document = dict[str, Any]
DRIVER_POOL = 100  # PyMongo's default maxPoolSize


def connect(settings: ServiceSettings) -> AsyncMongoClient[Document]:
    """A client for the configured store, taking that store's measures (`storage.ferretdb`)."""
    measures = use(settings.store)
    return AsyncMongoClient(
        settings.mongodb_url,
        tz_aware=True,
        serverSelectionTimeoutMS=5000,
        maxPoolSize=measures.max_connections or DRIVER_POOL,
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
