"""A `Sender` over in-memory stand-ins: the store, the SMTP server, the Sent folder and the
broker's publisher."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import pytest
from cryptography.fernet import Fernet
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from mailsync_send import sender as sender_module
from mailsync_send.relay import RelayError, RelayResult
from mailsync_send.send_metrics import SendMetrics
from mailsync_send.sender import Sender
from mailsync_send.settings import Settings
from mailsync_shared.contracts.envelope import Event
from mailsync_shared.contracts.mail import Address
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.mail_servers.accounts import ServerLogin
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.storage.documents import (
    MailboxDocument,
    MailboxStatus,
    SendRequestDocument,
    ServerAccount,
    Visibility,
)
from mailsync_shared.storage.scoped import WorkspaceStore
from tests.support.memory_store import MemoryDatabase

OWNER = "olive@acme.test"
CLIENT = "ann@client.test"


@dataclass(frozen=True)
class Relayed:
    account: ServerLogin
    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes


class MemorySmtp:
    """The mailbox's SMTP server: accepts every message unless told how to fail next."""

    def __init__(self) -> None:
        self.relayed: list[Relayed] = []
        self.failures: list[RelayError] = []
        self.refused: dict[str, str] = {}

    async def relay(
        self,
        account: ServerLogin,
        *,
        envelope_from: str,
        recipients: list[str] | tuple[str, ...],
        data: bytes,
    ) -> RelayResult:
        if self.failures:
            raise self.failures.pop(0)
        self.relayed.append(Relayed(account, envelope_from, tuple(recipients), data))
        accepted = tuple(r for r in recipients if r not in self.refused)
        return RelayResult(accepted, dict(self.refused), "250 2.0.0 queued")

    async def close(self) -> None:
        return None


@dataclass
class MemorySentFolder:
    """The mailbox's Sent folder."""

    messages: list[bytes] = field(default_factory=list)
    message_ids: set[str] = field(default_factory=set)

    async def contains_message_id(self, message_id: str) -> bool:
        return message_id in self.message_ids

    async def append(self, data: bytes, *, date: datetime) -> None:
        self.messages.append(data)


class MemorySentFolders:
    def __init__(self, folder: MemorySentFolder) -> None:
        self.folder = folder
        self.accounts: list[ServerLogin] = []

    def of(self, account: ServerLogin) -> MemorySentFolder:
        self.accounts.append(account)
        return self.folder

    async def close(self) -> None:
        return None


class MemoryEvents:
    """Records the events published, with the level each is published at."""

    def __init__(self) -> None:
        self.published: list[tuple[Event, Visibility | None]] = []

    async def publish(self, event: Event, *, level: Visibility | None = None) -> None:
        self.published.append((event, level))

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        return [event.model_dump() for event, _ in self.published if event.type == event_type]


@dataclass
class SendWorld:
    """A `Sender` and everything it reaches, in memory."""

    sender: Sender
    db: MemoryDatabase
    store: WorkspaceStore
    smtp: MemorySmtp
    sent_folder: MemorySentFolder
    events: MemoryEvents
    cipher: CredentialCipher

    async def mailbox(self, **changes: Any) -> MailboxDocument:
        secret = self.cipher.encrypt("owner-password")
        account = ServerAccount(
            host="mail.acme.test", port=587, username=OWNER, secret_encrypted=secret
        )
        mailbox = MailboxDocument(
            workspace_id=self.store.workspace_id,
            address=OWNER,
            display_name="Olive Owner",
            imap=account,
            smtp=account,
            status=MailboxStatus(state="live"),
        ).model_copy(update=changes)
        await self.store.mailboxes.insert_one(mailbox.to_document())
        return mailbox

    async def request(self, mailbox: MailboxDocument, **changes: Any) -> SendRequestDocument:
        request = SendRequestDocument.model_validate(
            {
                "workspace_id": self.store.workspace_id,
                "mailbox_id": mailbox.id,
                "idempotency_key": uuid.uuid4().hex,
                "from": Address(address=OWNER, name="Olive Owner"),
                "to": [Address(address=CLIENT, name="Ann Client")],
                "subject": "Re: Proposal",
                "body_text": "Thanks, see you Monday.\n",
                "message_id": f"<{uuid.uuid4().hex}@acme.test>",
                **changes,
            }
        )
        await self.store.send_requests.insert_one(request.to_document())
        return request

    async def stored(self, request: SendRequestDocument) -> SendRequestDocument:
        found = await self.store.send_requests.find_one({"_id": request.id})
        assert found is not None
        return SendRequestDocument.from_document(found)


def send_world(
    monkeypatch: pytest.MonkeyPatch, publisher: EventPublisher | None = None, **settings: Any
) -> SendWorld:
    """The sender publishes through `publisher` when given, else into `SendWorld.events`."""
    smtp, folder = MemorySmtp(), MemorySentFolder()
    monkeypatch.setattr(sender_module, "SmtpPool", lambda **_: smtp)
    monkeypatch.setattr(sender_module, "SentFolders", lambda **_: MemorySentFolders(folder))
    config = Settings(
        secret_key=SecretStr(Fernet.generate_key().decode()),
        **{"mailbox_cache_seconds": 0, **settings},
    )
    cipher = CredentialCipher(config.secret_key)
    db = MemoryDatabase()
    events = MemoryEvents()
    sender = Sender(
        db.as_database(),
        publisher or cast(EventPublisher, events),
        cipher,
        config,
        SendMetrics(CollectorRegistry()),
    )
    store = WorkspaceStore(db.as_database(), f"ws-{uuid.uuid4().hex[:8]}")
    return SendWorld(sender, db, store, smtp, folder, events, cipher)
