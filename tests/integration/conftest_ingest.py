"""Helpers for the ingest integration tests: mailbox documents, a spy on MessageFetched,
read-only snapshots of IMAP folders, the ingest worker run in-process or as a process, and the
`ingest` fixture that bundles them for one test's workspace."""

import asyncio
import contextlib
import imaplib
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pytest
from faststream.rabbit import RabbitBroker
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_ingest.settings import Settings
from mailsync_ingest.wakes import subscribe_wakes
from mailsync_ingest.worker import IngestWorker
from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument, ServerAccount, SyncPolicy
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.topology import WORK_EXCHANGE, declare_topology
from mailsync_shared.work_batches import events_in
from tests.conftest import TEST_DATABASE
from tests.support.infra import Infra
from tests.support.mail import MailAccount, create_account, fill_inbox, imap_login
from tests.support.ports import free_port

_FETCH_PREFIX = re.compile(rb"UID (\d+) FLAGS \(([^)]*)\)")


async def mailbox_state(store: WorkspaceStore, mailbox_id: str) -> MailboxDocument:
    """The mailbox as stored now (it must exist)."""
    document = await store.mailboxes.find_one({"_id": mailbox_id})
    assert document is not None
    return MailboxDocument.from_document(document)


def mailbox_document(
    infra: Infra,
    secret_key: str,
    workspace_id: str,
    account: MailAccount,
    *,
    backfill_days: int | None,
    password: str | None = None,
    imap_port: int | None = None,
) -> MailboxDocument:
    secret = CredentialCipher(SecretStr(secret_key)).encrypt(password or account.password)
    server = ServerAccount(
        host=infra.imap_host,
        port=imap_port or infra.imap_port,
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
        "allow_private_hosts": True,
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
    worker = IngestWorker(settings, db, publisher)
    wakes = subscribe_wakes(broker, worker, settings)
    async with broker:
        await declare_topology(broker)
        await broker.start()
        await wakes.bind(broker)
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

    async def at_least(self, count: int) -> bool:
        return len(self.events) >= count


@asynccontextmanager
async def fetched_spy(infra: Infra, workspace_id: str) -> AsyncIterator[FetchedSpy]:
    spy = FetchedSpy()
    connection = await aio_pika.connect_robust(infra.rabbitmq_url)
    try:
        channel = await connection.channel()
        # The session's vhost may be fresh: the exchange exists once any service started.
        await channel.declare_exchange(
            WORK_EXCHANGE.name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(
            WORK_EXCHANGE.name, routing_key=f"{MessageFetched.event_type}.{workspace_id}"
        )

        async def collect(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            async with message.process():
                spy.events += events_in(message.body, MessageFetched)

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


def doveadm(infra: Infra, *arguments: str) -> str:
    """Run doveadm against the local Dovecot (its own config file, not the system one)."""
    done = subprocess.run(
        ["doveadm", "-c", str(infra.dovecot_config), *arguments],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout


def folder_status(infra: Infra, account: MailAccount, folder: str = "INBOX") -> dict[str, int]:
    output = doveadm(
        infra, "mailbox", "status", "-u", account.address, "messages uidvalidity uidnext", folder
    )
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", output)}


def unique_published(spy: FetchedSpy) -> dict[str, MessageFetched]:
    """The spy's events by their stable id (one per folder copy and UIDVALIDITY)."""
    return {event.id: event for event in spy.events}


class FreezingProxy:
    """A TCP proxy to the IMAP server whose open connections can be made to go silent: bytes
    are dropped both ways while the sockets stay open, like a peer behind a dead NAT entry.
    Connections opened after `freeze()` flow normally."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._frozen: set[int] = set()
        self._generation = 0
        self._server: asyncio.Server | None = None
        self.connections = 0

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    def freeze(self) -> None:
        """Silence every connection open now."""
        self._frozen.update(range(self._generation + 1))
        self._generation += 1

    async def __aenter__(self) -> "FreezingProxy":
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        generation = self._generation
        self.connections += 1
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)

        async def pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                while data := await source.read(65536):
                    if generation in self._frozen:
                        continue
                    sink.write(data)
                    await sink.drain()

        try:
            await asyncio.gather(pump(reader, upstream_writer), pump(upstream_reader, writer))
        finally:
            for stream in (writer, upstream_writer):
                stream.close()


@contextmanager
def ingest_process(
    service_env: dict[str, str], workspace_id: str, log: Path, **settings: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`python -m mailsync_ingest` leasing only this workspace's mailboxes; (process, port)."""
    port = free_port()
    env = {
        **os.environ,
        **service_env,
        "MAILSYNC_HTTP_PORT": str(port),
        "MAILSYNC_WORKSPACES": f'["{workspace_id}"]',
        "MAILSYNC_POLL_INTERVAL_SECONDS": "0.2",
        "MAILSYNC_IDLE_REFRESH_SECONDS": "5",
        **{f"MAILSYNC_{name.upper()}": value for name, value in settings.items()},
    }
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "mailsync_ingest"], env=env, stdout=output, stderr=output
        )
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


async def ready(port: int) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{port}/health/ready", timeout=2)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


@dataclass(frozen=True)
class SeededMailbox:
    """A fresh Dovecot account, its stored mailbox and the Message-IDs put in its INBOX."""

    owner: MailAccount
    mailbox: MailboxDocument
    sent_ids: list[str]


@dataclass(frozen=True)
class IngestCase:
    """One test's infrastructure and workspace, with the set-up the ingest tests share."""

    infra: Infra
    secret_key: str
    service_env: dict[str, str]
    mongo: AsyncDatabase[Document]
    store: WorkspaceStore
    workspace_id: str

    def mailbox(
        self,
        account: MailAccount,
        *,
        backfill_days: int | None = 30,
        password: str | None = None,
        imap_port: int | None = None,
    ) -> MailboxDocument:
        return mailbox_document(
            self.infra,
            self.secret_key,
            self.workspace_id,
            account,
            backfill_days=backfill_days,
            password=password,
            imap_port=imap_port,
        )

    async def add_mailbox(self, mailbox: MailboxDocument) -> MailboxDocument:
        await self.store.mailboxes.insert_one(mailbox.to_document())
        return mailbox

    async def seeded_mailbox(
        self, messages: int = 0, sender: str = "", *, backfill_days: int | None = 30
    ) -> SeededMailbox:
        """A new account with `messages` from `sender` in its INBOX, and its mailbox stored."""
        owner = create_account(self.infra, "acme.test", "owner")
        sent_ids = fill_inbox(self.infra, owner, messages, sender) if messages else []
        mailbox = await self.add_mailbox(self.mailbox(owner, backfill_days=backfill_days))
        return SeededMailbox(owner, mailbox, sent_ids)

    async def state(self, mailbox_id: str) -> MailboxDocument:
        return await mailbox_state(self.store, mailbox_id)

    async def caught_up(self, mailbox_id: str, spy: FetchedSpy, count: int) -> bool:
        """The mailbox is live and at least `count` messages were published."""
        state = await self.state(mailbox_id)
        return len(spy.events) >= count and state.status.state == "live"

    def settings(self, **overrides: Any) -> Settings:
        return worker_settings(self.infra, self.secret_key, self.workspace_id, **overrides)

    def spy(self) -> contextlib.AbstractAsyncContextManager[FetchedSpy]:
        return fetched_spy(self.infra, self.workspace_id)

    def worker(self, settings: Settings) -> contextlib.AbstractAsyncContextManager[IngestWorker]:
        return running_worker(settings, self.mongo)

    @asynccontextmanager
    async def watched_worker(self, **overrides: Any) -> AsyncIterator[FetchedSpy]:
        """A spy on the workspace's MessageFetched, then a worker with these settings."""
        async with self.spy() as spy, self.worker(self.settings(**overrides)):
            yield spy

    def process(
        self, log: Path, **settings: str
    ) -> contextlib.AbstractContextManager[tuple[subprocess.Popen[bytes], int]]:
        return ingest_process(self.service_env, self.workspace_id, log, **settings)


@pytest.fixture(name="ingest")
def ingest_fixture(
    infra: Infra,
    secret_key: str,
    service_env: dict[str, str],
    mongo: AsyncDatabase[Document],
    store: WorkspaceStore,
    workspace_id: str,
) -> IngestCase:
    return IngestCase(infra, secret_key, service_env, mongo, store, workspace_id)
