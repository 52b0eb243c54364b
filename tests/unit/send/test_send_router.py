"""Send's router in FastStream's in-memory broker: a send request decoded and carried out by
the sender over in-memory stand-ins, its events published, a public event recorded for the
webhooks that want it, and each delivery acknowledged or dead-lettered. The webhook queue's
bindings (`mailsync_shared.webhooks.bindings`) are RabbitMQ's: here the events are put in
the queue directly."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from faststream.rabbit import RabbitBroker

from mailsync_send.handlers import SendHandlers, send_router
from mailsync_send.webhooks.recorder import WebhookRecorder
from mailsync_shared.contracts.outbound import (
    EmailSendFailed,
    EmailSent,
    SendRequest,
    SendRequested,
)
from mailsync_shared.messaging import (
    QUEUE_HEADER,
    REASON_HEADER,
    DeadLetterPermanentErrors,
    EventPublisher,
)
from mailsync_shared.topology import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    SEND_REQUESTS,
    WEBHOOK_EVENTS_QUEUE,
)
from mailsync_shared.webhooks.documents import DELIVERIES, SUBSCRIPTIONS
from tests.support.in_memory_broker import Received, Settlements, collect, in_memory
from tests.unit.send.memory import SendWorld, send_world

SENT = EmailSent.model_fields["type"].default


@dataclass
class Running:
    broker: RabbitBroker
    world: SendWorld
    settled: Settlements
    public: list[Received]
    dead_letters: list[Received]
    woken: list[tuple[str, str]]

    async def request_send(self, request_id: str) -> None:
        event = SendRequested.create(
            source="/test",
            workspace_id=self.world.store.workspace_id,
            subject=request_id,
            data=SendRequest(send_request_id=request_id),
        )
        await self.publish_request(event.model_dump_json(by_alias=True).encode())

    async def publish_request(self, body: bytes) -> None:
        await self.broker.publish(
            body,
            exchange=SEND_REQUESTS.exchange,
            routing_key=f"{SendRequested.model_fields['type'].default}.ws",
            content_type="application/json",
        )

    async def deliver_public_event(self, body: bytes) -> None:
        """A public event in the webhook queue, as its bindings would route it there."""
        await self.broker.publish(body, queue=WEBHOOK_EVENTS_QUEUE)

    def outcomes(self, exchange_name: str = SEND_REQUESTS.exchange.name) -> list[str]:
        return [s.outcome for s in self.settled.settled if s.exchange == exchange_name]


@pytest.fixture(name="send")
async def send_fixture(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    broker = RabbitBroker(middlewares=[DeadLetterPermanentErrors])
    publisher = EventPublisher(broker, [EmailSent, EmailSendFailed, SendRequested])
    world = send_world(monkeypatch, publisher)
    woken: list[tuple[str, str]] = []
    recorder = WebhookRecorder(
        world.db.as_database(),
        cache_seconds=0,
        recorded=lambda subscription, workspace: woken.append((subscription, workspace)),
    )
    broker.include_router(send_router(SendHandlers(world.sender, recorder)))
    running = Running(
        broker,
        world,
        Settlements(),
        public=collect(broker, EVENTS_EXCHANGE, "mailsync.email.#"),
        dead_letters=collect(broker, DEAD_LETTER_EXCHANGE, "#"),
        woken=woken,
    )
    async with in_memory(broker) as settled:
        running.settled = settled
        yield running


async def subscribe_to_sent_mail(world: SendWorld) -> str:
    await world.store.collection(SUBSCRIPTIONS).insert_one(
        {
            "_id": "sub-1",
            "url": "https://crm.example/hooks",
            "event_types": [SENT],
            "enabled": True,
            "secret_encrypted": world.cipher.encrypt("whsec_AAAA"),
        }
    )
    return "sub-1"


async def test_a_send_request_is_sent_announced_and_acknowledged(send: Running) -> None:
    request = await send.world.request(await send.world.mailbox())

    await send.request_send(request.id)

    assert len(send.world.smtp.relayed) == 1
    [sent] = [message.json() for message in send.public]
    assert sent["type"] == SENT
    assert sent["data"]["send_request_id"] == request.id
    assert send.outcomes() == ["ack"]


async def test_a_public_event_is_recorded_for_the_webhooks_that_want_it(send: Running) -> None:
    subscription = await subscribe_to_sent_mail(send.world)
    request = await send.world.request(await send.world.mailbox())
    await send.request_send(request.id)
    [sent] = send.public

    await send.deliver_public_event(sent.body)
    await send.deliver_public_event(sent.body)

    deliveries = await send.world.store.collection(DELIVERIES).find({})
    assert [(d["subscription_id"], d["event_id"]) for d in deliveries] == [
        (subscription, sent.json()["id"])
    ], "one delivery, however often the event comes"
    assert send.woken[0] == (subscription, send.world.store.workspace_id)
    assert send.outcomes("") == ["ack", "ack"]


async def test_a_repeated_send_request_is_acknowledged_without_a_second_send(
    send: Running,
) -> None:
    request = await send.world.request(await send.world.mailbox())

    await send.request_send(request.id)
    await send.request_send(request.id)

    assert len(send.world.smtp.relayed) == 1
    assert len(send.public) == 1
    assert send.outcomes() == ["ack", "ack"]


async def test_a_request_for_an_unknown_send_is_dead_lettered_with_the_reason(
    send: Running,
) -> None:
    await send.request_send("no-such-request")

    [letter] = send.dead_letters
    assert str(letter.headers[REASON_HEADER]).startswith("PermanentError")
    assert SEND_REQUESTS.queue.name in str(letter.headers[QUEUE_HEADER])
    assert send.outcomes() == ["ack"]
    assert send.world.smtp.relayed == []


async def test_an_invalid_send_request_is_dead_lettered(send: Running) -> None:
    await send.publish_request(b'{"type": "mailsync.send.requested.v1"}')

    [letter] = send.dead_letters
    assert str(letter.headers[REASON_HEADER]).startswith("ValidationError")
    assert send.outcomes() == ["ack"]


async def test_a_body_that_is_no_public_event_is_dead_lettered_by_the_recorder(
    send: Running,
) -> None:
    await send.deliver_public_event(json.dumps({"hello": "world"}).encode())

    [letter] = send.dead_letters
    assert "not a public event" in str(letter.headers[REASON_HEADER])
    assert await send.world.store.collection(DELIVERIES).count({}) == 0
