"""Connecting to the MongoDB-compatible server."""

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.settings import ServiceSettings

Document = dict[str, Any]


def connect(settings: ServiceSettings) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(settings.mongodb_url, tz_aware=True, serverSelectionTimeoutMS=5000)


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
