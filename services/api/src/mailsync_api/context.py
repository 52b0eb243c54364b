"""Everything a request handler may need, built once per app and shared through `app.state`."""

from dataclasses import dataclass, field

from faststream.rabbit import RabbitBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_api.settings import Settings
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.shared_reads import SharedReads
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
    # Reads of the callers' keys and users, shared by requests that ask at the same moment.
    credential_reads: SharedReads[Document | None] = field(default_factory=SharedReads)
