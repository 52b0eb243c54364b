"""Helpers for the ingest integration tests: mailbox documents, a spy on MessageFetched,
read-only snapshots of IMAP folders, and the ingest worker run in-process."""

import imaplib
import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import aio_pika
from faststream.rabbit import RabbitBroker
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_ingest.settings import Settings
from mailsync_ingest.worker import IngestWorker
from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument, ServerAccount, SyncPolicy
from mailsync_shared.topology import WORK_EXCHANGE, declare_topology
from tests.conftest import TEST_DATABASE
from tests.support.infra import Infra
from tests.support.mail import MailAccount, imap_login

_FETCH_PREFIX = re.compile(rb"UID (\d+) FLAGS \(([^)]*)\)")


def mailbox_document(
    infra: Infra,
    secret_key: str,
    workspace_id: str,
    account: MailAccount,
    *,
    backfill_days: int | None,
    password: str | None = None,
) -> MailboxDocument:
    secret = CredentialCipher(SecretStr(secret_key)).encrypt(password or account.password)
    server = ServerAccount(
        host=infra.imap_host,
        port=infra.imap_port,
        security="none",
        username=account.address,
        secret_encrypted=secret,
    )
    return MailboxDocument(
        workspace_id=workspace_id,
        address=account.address,
        imap=server,
        smtp=server.model_copy(update={"port": infra.smtp_port}),
        sync=SyncPolicy(backfill_days=backfill_days),
    )


def worker_settings(infra: Infra, secret_key: str, workspace_id: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "rabbitmq_url": infra.rabbitmq_url,
        "mongodb_url": infra.mongodb_url,
        "mongodb_database": TEST_DATABASE,
        "secret_key": secret_key,
        "workspaces": [workspace_id],
        "worker_id": f"test-{uuid.uuid4().hex[:8]}",
        "poll_interval_seconds": 0.2,
        "claim_interval_seconds": 0.3,
        "reconnect_initial_seconds": 0.2,
        "idle_refresh_seconds": 5.0,
        "auth_retry_seconds": 60.0,
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def running_worker(
    settings: Settings, db: AsyncDatabase[Document]
) -> AsyncIterator[IngestWorker]:
    """The ingest worker with its own broker connection, as `create_app` wires it."""
    broker = RabbitBroker(settings.rabbitmq_url)
    publisher = EventPublisher(broker, [MessageFetched])
    async with broker:
        await declare_topology(broker)
        await broker.start()
        worker = IngestWorker(settings, db, publisher)
        await worker.start()
        try:
            yield worker
        finally:
            await worker.stop()


@dataclass
class FetchedSpy:
    """Every MessageFetched of one workspace, from a temporary exclusive queue."""

    events: list[MessageFetched] = field(default_factory=list)

    def message_ids(self) -> list[str]:
        return [event.data.message_id for event in self.events]


@asynccontextmanager
async def fetched_spy(infra: Infra, workspace_id: str) -> AsyncIterator[FetchedSpy]:
    spy = FetchedSpy()
    connection = await aio_pika.connect_robust(infra.rabbitmq_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(
            WORK_EXCHANGE.name, routing_key=f"{MessageFetched.event_type}.{workspace_id}"
        )

        async def collect(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                spy.events.append(MessageFetched.model_validate(json.loads(message.body)))

        await queue.consume(collect)
        yield spy
    finally:
        await connection.close()


def append(
    infra: Infra,
    account: MailAccount,
    folder: str,
    message: EmailMessage,
    *,
    flags: str = "",
    when: datetime | None = None,
) -> None:
    client = imap_login(infra, account)
    try:
        moment = imaplib.Time2Internaldate(when.timestamp() if when else time.time())
        client.append(folder, f"({flags})" if flags else None, moment, message.as_bytes())
    finally:
        client.logout()


def snapshot(infra: Infra, account: MailAccount, folder: str) -> dict[int, tuple[str, bytes]]:
    """UID -> (flags, bytes) of every message in the folder, read with EXAMINE and PEEK."""
    client = imap_login(infra, account)
    try:
        client.select(f'"{folder}"', readonly=True)
        _, found = client.uid("SEARCH", "ALL")
        if not found or not found[0]:
            return {}
        _, parts = client.uid("FETCH", "1:*", "(UID FLAGS BODY.PEEK[])")
        result: dict[int, tuple[str, bytes]] = {}
        for part in parts:
            if isinstance(part, tuple):
                match = _FETCH_PREFIX.search(part[0])
                assert match is not None, part[0]
                flags = " ".join(sorted(match.group(2).decode().split()))
                result[int(match.group(1))] = (flags, part[1])
        return result
    finally:
        client.logout()
