"""Helpers for the capture and associate integration tests: services in-process, event taps,
and the `ws` fixture through which a test publishes to and watches the service under test."""

import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar
from unittest.mock import patch

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from faststream.asgi import AsgiFastStream
from faststream.rabbit import RabbitBroker
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_associate.app import create_app as create_associate_app
from mailsync_associate.settings import Settings as AssociateSettings
from mailsync_capture.app import create_app as create_capture_app
from mailsync_capture.settings import Settings as CaptureSettings
from mailsync_shared.contracts.envelope import Event
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument, ServerAccount
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.topology import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    WORKSPACE_HEADER,
    exchange_for,
)
from tests.support.captured_mail import MAILBOX_ID, OWNER
from tests.support.infra import Infra
from tests.support.polling import eventually

SettingsT = TypeVar("SettingsT")


def settings_from(env: dict[str, str], settings_class: Callable[[], SettingsT]) -> SettingsT:
    """The service's settings read from `env`, as its entry point would read them."""
    with patch.dict(os.environ, env):
        return settings_class()


@asynccontextmanager
async def running(app: AsgiFastStream) -> AsyncIterator[AsgiFastStream]:
    """The service's app started in this process (startup hooks, broker, subscribers)."""
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


async def publish(broker: RabbitBroker, event: Event) -> None:
    """Publish an event as the producing service would: same exchange, key and encoding."""
    await publish_raw(
        broker, event.model_dump_json(by_alias=True).encode(), event, message_id=event.id
    )


async def publish_raw(
    broker: RabbitBroker, body: bytes, like: Event, *, message_id: str | None = None
) -> None:
    await broker.publish(
        body,
        exchange=exchange_for(type(like)),
        routing_key=like.routing_key,
        message_id=message_id,
        message_type=like.type,
        headers={WORKSPACE_HEADER: like.workspaceid},
        content_type="application/json",
        persist=True,
    )


class Tap:
    """An exclusive queue bound to an exchange, collecting what arrives."""

    def __init__(self, queue: AbstractQueue) -> None:
        self._queue = queue
        self.received: list[AbstractIncomingMessage] = []

    async def drain(self) -> list[AbstractIncomingMessage]:
        while (message := await self._queue.get(no_ack=True, fail=False)) is not None:
            self.received.append(message)
        return self.received

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        """Every event received, in order; a work message holding a list counts each one."""
        bodies: list[dict[str, Any]] = []
        for message in self.received:
            payload = json.loads(message.body)
            bodies += payload if isinstance(payload, list) else [payload]
        return [b for b in bodies if event_type is None or b.get("type") == event_type]

    async def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], what: str, within: float = 30
    ) -> list[dict[str, Any]]:
        async def probe() -> list[dict[str, Any]] | None:
            await self.drain()
            return self.events() if predicate(self.events()) else None

        return await eventually(probe, timeout=within, what=what)


TapFactory = Callable[[str, str], Awaitable[Tap]]


@asynccontextmanager
async def taps(rabbitmq_url: str) -> AsyncIterator[TapFactory]:
    """`await tap(exchange_name, binding_key)` -> a `Tap`; queues vanish with the connection."""
    connection = await aio_pika.connect_robust(rabbitmq_url)
    channel = await connection.channel()

    async def tap(exchange: str, binding: str) -> Tap:
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(exchange, routing_key=binding)
        return Tap(queue)

    try:
        yield tap
    finally:
        await connection.close()


@pytest.fixture(scope="module", name="capture_service")
async def capture_service_fixture(
    service_env: dict[str, str], mongo: AsyncDatabase[Document]
) -> AsyncIterator[None]:
    async with running(create_capture_app(settings_from(service_env, CaptureSettings))):
        yield


@pytest.fixture(scope="module", name="associate_service")
async def associate_service_fixture(
    service_env: dict[str, str], mongo: AsyncDatabase[Document]
) -> AsyncIterator[None]:
    async with running(create_associate_app(settings_from(service_env, AssociateSettings))):
        yield


@dataclass(frozen=True)
class ServiceWorkspace:
    """A test's workspace as the service under test sees it: its store, the broker events
    reach the service through, and taps on the workspace's public events and dead letters."""

    id: str
    store: WorkspaceStore
    broker: RabbitBroker
    events: Tap
    dead_letters: Tap
    tap: TapFactory

    async def publish(self, event: Event) -> None:
        await publish(self.broker, event)

    async def publish_raw(self, body: bytes, like: Event, *, message_id: str | None = None) -> None:
        await publish_raw(self.broker, body, like, message_id=message_id)


async def owner_mailbox(mongo: AsyncDatabase[Document], workspace_id: str) -> None:
    """The mailbox the test mail (`tests.support.captured_mail`) is seen in, shared with the
    workspace so its public events carry everything they may; one workspace at a time holds
    its id."""
    await mongo["mailboxes"].delete_one({"_id": MAILBOX_ID})
    account = ServerAccount(host="127.0.0.1", port=1, username=OWNER)
    mailbox = MailboxDocument(
        _id=MAILBOX_ID,
        workspace_id=workspace_id,
        address=OWNER,
        imap=account,
        smtp=account,
        visibility="workspace",
    )
    await mongo["mailboxes"].insert_one(mailbox.to_document())


@pytest.fixture(name="ws")
async def ws_fixture(
    infra: Infra,
    broker: RabbitBroker,
    store: WorkspaceStore,
    workspace_id: str,
    mongo: AsyncDatabase[Document],
) -> AsyncIterator[ServiceWorkspace]:
    await owner_mailbox(mongo, workspace_id)
    async with taps(infra.rabbitmq_url) as tap:
        yield ServiceWorkspace(
            id=workspace_id,
            store=store,
            broker=broker,
            events=await tap(EVENTS_EXCHANGE.name, f"#.{workspace_id}"),
            dead_letters=await tap(DEAD_LETTER_EXCHANGE.name, f"#.{workspace_id}"),
            tap=tap,
        )
