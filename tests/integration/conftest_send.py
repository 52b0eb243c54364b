"""Fixtures for the send service's integration tests: the service as a process, event taps,
mail accounts ready to log in, and the owner's mailbox stored with its password encrypted."""

import asyncio
import contextlib
import imaplib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import httpx
import pytest
from aio_pika.abc import AbstractChannel, AbstractQueue
from pydantic import SecretStr

from mailsync_shared.contracts.mail import Address
from mailsync_shared.contracts.outbound import SendRequest, SendRequested
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.storage.documents import MailboxDocument, SendRequestDocument, ServerAccount
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.topology import EVENTS_EXCHANGE, WORK_EXCHANGE
from tests.support.infra import REPO, Infra
from tests.support.mail import MailAccount, create_account
from tests.support.polling import eventually
from tests.support.ports import free_port


@dataclass(frozen=True)
class SendProcess:
    process: subprocess.Popen[bytes]
    log: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_send(service_env: dict[str, str], log: Path, **settings: str) -> SendProcess:
    """`python -m mailsync_send`, started as deployed, once it reports ready."""
    port = free_port()
    env = {
        **os.environ,
        **service_env,
        "MAILSYNC_HTTP_PORT": str(port),
        "MAILSYNC_RETRY_BACKOFF_SECONDS": "0.2",
        "MAILSYNC_SMTP_TIMEOUT_SECONDS": "10",
        "MAILSYNC_IMAP_TIMEOUT_SECONDS": "10",
        "MAILSYNC_SCHEDULER_INTERVAL_SECONDS": "0.2",
        # Requests here are stored directly, not by the api: nothing to wait for.
        **{f"MAILSYNC_{name.upper()}": value for name, value in settings.items()},
    }
    with log.open("ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "mailsync_send"], env=env, cwd=REPO, stdout=output, stderr=output
        )
    # Index creation at start can take a while on a busy FerretDB.
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None:
            pytest.fail(f"send service exited at start:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                return SendProcess(process, log, port)
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_send(SendProcess(process, log, port))
            pytest.fail(f"send service not ready after 90 s:\n{log.read_text()}")
        time.sleep(0.2)


def stop_send(service: SendProcess) -> None:
    service.process.terminate()
    try:
        service.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        service.process.kill()
        service.process.wait()


@pytest.fixture(scope="module", name="send_service")
def send_service_fixture(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SendProcess]:
    """The send service, one request at a time (prefetch 1), so a request published after
    another is handled after it."""
    log = tmp_path_factory.mktemp("send") / "send.log"
    service = start_send(service_env, log, prefetch="1")
    try:
        yield service
    finally:
        stop_send(service)


class Tap:
    """An exclusive queue bound to the public events exchange."""

    def __init__(self, queue: AbstractQueue) -> None:
        self._queue = queue
        self.received: list[bytes] = []

    async def drain(self) -> list[bytes]:
        while (message := await self._queue.get(no_ack=True, fail=False)) is not None:
            self.received.append(message.body)
        return self.received

    async def wait_for_count(self, count: int, what: str, within: float = 30) -> list[bytes]:
        async def probe() -> list[bytes] | None:
            received = await self.drain()
            return received if len(received) >= count else None

        return await eventually(probe, timeout=within, what=what)


@dataclass
class Rabbit:
    channel: AbstractChannel

    async def tap(self, binding: str) -> Tap:
        queue = await self.channel.declare_queue(exclusive=True)
        await queue.bind(EVENTS_EXCHANGE.name, routing_key=binding)
        return Tap(queue)

    async def request_send(self, workspace_id: str, request_id: str) -> None:
        event = SendRequested.create(
            source="/mailsync/api",
            workspace_id=workspace_id,
            data=SendRequest(send_request_id=request_id),
            subject=request_id,
        )
        exchange = await self.channel.get_exchange(WORK_EXCHANGE.name)
        await exchange.publish(
            aio_pika.Message(
                event.model_dump_json(by_alias=True).encode(),
                content_type="application/json",
                message_id=event.id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=event.routing_key,
        )


@pytest.fixture(name="rabbit")
async def rabbit_fixture(infra: Infra, broker: object) -> AsyncIterator[Rabbit]:
    """A channel for taps and commands; `broker` has declared the topology."""
    connection = await aio_pika.connect_robust(infra.rabbitmq_url)
    try:
        yield Rabbit(await connection.channel())
    finally:
        await connection.close()


def _logs_in(infra: Infra, account: MailAccount) -> bool:
    try:
        client = imaplib.IMAP4(infra.imap_host, infra.imap_port)
    except OSError:
        return False
    try:
        client.login(account.address, account.password)
    except imaplib.IMAP4.error:
        return False
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            client.logout()
    return True


async def ready_account(infra: Infra, domain: str, local: str) -> MailAccount:
    """A fresh account, once Dovecot (which re-reads its users at most once a second) knows it."""
    account = create_account(infra, domain, local)

    async def logs_in() -> bool:
        return await asyncio.to_thread(_logs_in, infra, account)

    await eventually(logs_in, timeout=20, interval=0.3, what=f"{account.address} to log in")
    return account


@pytest.fixture(name="owner")
async def owner_fixture(infra: Infra) -> MailAccount:
    """The mailbox owner's account, which sends."""
    return await ready_account(infra, "acme.test", "owner")


@pytest.fixture(name="client")
async def client_fixture(infra: Infra) -> MailAccount:
    """A correspondent's account, which receives."""
    return await ready_account(infra, "client.test", "client")


async def store_mailbox(
    store: WorkspaceStore, infra: Infra, owner: MailAccount, secret_key: str, **changes: object
) -> MailboxDocument:
    secret = CredentialCipher(SecretStr(secret_key)).encrypt(owner.password)

    def account(host: str, port: int) -> ServerAccount:
        return ServerAccount(
            host=host, port=port, security="none", username=owner.address, secret_encrypted=secret
        )

    mailbox = MailboxDocument(
        workspace_id=store.workspace_id,
        address=owner.address,
        display_name="Olive Owner",
        imap=account(infra.imap_host, infra.imap_port),
        smtp=account(infra.smtp_host, infra.smtp_port),
        append_to_sent=True,
    ).model_copy(update=changes)
    await store.mailboxes.insert_one(mailbox.to_document())
    return mailbox


async def store_request(
    store: WorkspaceStore, mailbox: MailboxDocument, to: list[str], **changes: object
) -> SendRequestDocument:
    domain = mailbox.address.rsplit("@", 1)[1]
    request = SendRequestDocument.model_validate(
        {
            "workspace_id": store.workspace_id,
            "mailbox_id": mailbox.id,
            "idempotency_key": uuid.uuid4().hex,
            "from": Address(address=mailbox.address, name=mailbox.display_name),
            "to": [Address(address=address, name="Ann Client") for address in to],
            "subject": "Re: Proposal",
            "body_text": "Thanks, see you Monday.\n",
            "in_reply_to": ["<first-reply@client.test>"],
            "references": ["<proposal@acme.test>", "<first-reply@client.test>"],
            "message_id": f"<{uuid.uuid4().hex}@{domain}>",
            "thread_id": f"thread-{uuid.uuid4().hex[:8]}",
            **changes,
        }
    )
    await store.send_requests.insert_one(request.to_document())
    return request


@dataclass(frozen=True)
class Sending:
    """One workspace's side of a send: its store, the owner writing to the client, the bus."""

    store: WorkspaceStore
    infra: Infra
    rabbit: Rabbit
    workspace_id: str
    owner: MailAccount
    client: MailAccount
    secret_key: str

    async def mailbox(self, **changes: object) -> MailboxDocument:
        """The owner's mailbox, stored with its password encrypted."""
        return await store_mailbox(self.store, self.infra, self.owner, self.secret_key, **changes)

    async def request(
        self, mailbox: MailboxDocument, to: list[str] | None = None, **changes: object
    ) -> SendRequestDocument:
        """A stored request from `mailbox`, to the client unless `to` says otherwise."""
        recipients = [self.client.address] if to is None else to
        return await store_request(self.store, mailbox, recipients, **changes)

    async def request_send(self, request_id: str) -> None:
        await self.rabbit.request_send(self.workspace_id, request_id)

    async def tap(self, event_type: str) -> Tap:
        """A tap on this workspace's events of `event_type`."""
        return await self.rabbit.tap(f"{event_type}.{self.workspace_id}")


@pytest.fixture(name="sending")
async def sending_fixture(
    store: WorkspaceStore,
    infra: Infra,
    rabbit: Rabbit,
    workspace_id: str,
    owner: MailAccount,
    client: MailAccount,
    secret_key: str,
) -> Sending:
    return Sending(store, infra, rabbit, workspace_id, owner, client, secret_key)
