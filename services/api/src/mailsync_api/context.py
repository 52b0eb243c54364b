"""Everything a request handler may need, built once per app and shared through `app.state`."""

from dataclasses import dataclass

from faststream.rabbit import RabbitBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_api.settings import Settings
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.kept_mailboxes import KeptMailboxes


@dataclass(frozen=True)
class ApiContext:
    settings: Settings
    broker: RabbitBroker
    publisher: EventPublisher
    client: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    cipher: CredentialCipher
    mailboxes: KeptMailboxes
