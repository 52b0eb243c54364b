"""Associate's router in FastStream's in-memory broker: a shard delivery decoded, logged by the
domain classes over in-memory batches, its events published, and the delivery acknowledged,
requeued or dead-lettered. Redelivery itself needs the real broker (integration tests)."""

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from unittest.mock import AsyncMock, patch

import pytest
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage
from faststream.rabbit.message import RabbitMessage as Delivery
from faststream.rabbit.testing import TestRabbitBroker
from pymongo import AsyncMongoClient

from mailsync_associate.batch_logbook import BatchLogbook
from mailsync_associate.intake import Intake
from mailsync_associate.router import associate_router
from mailsync_shared.contracts.mail import CapturedMessage, MessageCaptured
from mailsync_shared.contracts.outbound import EmailSent, SentEmail
from mailsync_shared.contracts.records import EmailLogged, ThreadAssociated
from mailsync_shared.messaging import (
    QUEUE_HEADER,
    REASON_HEADER,
    DeadLetterPermanentErrors,
    EventPublisher,
)
from mailsync_shared.storage.client import Document
from mailsync_shared.topology import (
    ASSOCIATE_SHARDS,
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    WORK_EXCHANGE,
    WORKSPACE_HEADER,
    Consumer,
    Sharded,
)
from tests.unit.associate.memory import MemoryBatches, SendRequests, mail

# The in-memory broker routes direct, topic, fanout and headers exchanges, not consistent-hash
# ones: here the shard queues hang off a direct exchange, one routing key per shard.
SHARDS_EXCHANGE = RabbitExchange("test.associate.shards", type=ExchangeType.DIRECT)
SHARDED = Sharded(
    "associate",
    SHARDS_EXCHANGE,
    ASSOCIATE_SHARDS.events,
    tuple(
        Consumer(
            RabbitQueue(f"test.associate.shard-{n}", routing_key=f"shard-{n}"),
            SHARDS_EXCHANGE,
            MessageCaptured,
        )
        for n in range(2)
    ),
)


@dataclass
class Service:
    broker: RabbitBroker
    batches: MemoryBatches
    requests: SendRequests
    published: list[dict[str, Any]]
    work: list[dict[str, Any]]
    dead_letters: list[RabbitMessage]
    decisions: list[str]

    async def deliver(self, body: bytes, event_type: str, *, shard: int = 0) -> None:
        await self.broker.publish(
            body,
            exchange=SHARDS_EXCHANGE,
            routing_key=f"shard-{shard}",
            message_type=event_type,
            headers={WORKSPACE_HEADER: "w1"},
            content_type="application/json",
        )


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    broker = RabbitBroker(middlewares=[DeadLetterPermanentErrors])
    publisher = EventPublisher(broker, [EmailLogged, ThreadAssociated, MessageCaptured])
    batches, requests = MemoryBatches(), SendRequests()
    intake = Intake(
        BatchLogbook(batches, publisher.publish_each), requests.complete, publisher.publish
    )
    # The shard leases are never taken here (`ShardConsumers.start` is not called), so their
    # store is never reached.
    unused: AsyncMongoClient[Document] = AsyncMongoClient("mongodb://127.0.0.1:9", connect=False)
    router, _ = associate_router(intake, unused["unused"], sharded=SHARDED)
    broker.include_router(router)
    published: list[dict[str, Any]] = []
    work: list[dict[str, Any]] = []
    dead_letters: list[RabbitMessage] = []

    @broker.subscriber(RabbitQueue("test.events", routing_key="#"), EVENTS_EXCHANGE)
    async def on_event(message: RabbitMessage) -> None:
        published.append(json.loads(message.body))

    @broker.subscriber(RabbitQueue("test.work", routing_key="#"), WORK_EXCHANGE)
    async def on_work(message: RabbitMessage) -> None:
        work.append(json.loads(message.body))

    @broker.subscriber(RabbitQueue("test.dead-letters", routing_key="#"), DEAD_LETTER_EXCHANGE)
    async def on_dead_letter(message: RabbitMessage) -> None:
        dead_letters.append(message)

    decisions: list[str] = []  # "ack" or "nack" per shard delivery

    def deciding(decision: str) -> Callable[..., Awaitable[None]]:
        async def decide(delivery: Delivery, *args: Any, **kwargs: Any) -> None:
            if delivery.raw_message.exchange == SHARDS_EXCHANGE.name:
                decisions.append(decision)

        return decide

    with (
        patch.object(Delivery, "ack", deciding("ack")),
        patch.object(Delivery, "nack", deciding("nack")),
    ):
        async with TestRabbitBroker(broker) as test_broker:
            yield Service(test_broker, batches, requests, published, work, dead_letters, decisions)
    await unused.close()


def captured(*names: str) -> list[MessageCaptured]:
    return [
        MessageCaptured.create(
            source="/test", workspace_id="w1", data=CapturedMessage(message=mail(name))
        )
        for name in names
    ]


def as_list(events: list[MessageCaptured]) -> bytes:
    return json.dumps([event.model_dump(mode="json", by_alias=True) for event in events]).encode()


def logged_ids(published: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["message_id"] for e in published if e["type"] == EmailLogged.event_type]


async def test_a_delivery_of_captured_messages_is_logged_published_and_acknowledged(
    service: Service,
) -> None:
    service.batches["w1"].linked = {"<b@client.test>"}

    await service.deliver(as_list(captured("a", "b")), MessageCaptured.event_type)

    assert [m for m, _ in service.batches["w1"].logged] == ["<a@client.test>", "<b@client.test>"]
    assert sorted(logged_ids(service.published)) == ["<a@client.test>", "<b@client.test>"]
    assert [e["type"] for e in service.published].count(ThreadAssociated.event_type) == 1
    assert service.batches["w1"].announced == ["<a@client.test>", "<b@client.test>"]
    assert service.decisions == ["ack"]
    assert service.dead_letters == []


async def test_a_delivery_holding_one_event_is_logged_too(service: Service) -> None:
    (event,) = captured("a")
    await service.deliver(event.model_dump_json(by_alias=True).encode(), event.type, shard=1)

    assert logged_ids(service.published) == ["<a@client.test>"]
    assert service.decisions == ["ack"]


async def test_sent_mail_is_logged_on_the_thread_it_replies_on(service: Service) -> None:
    sent = EmailSent.create(
        source="/test",
        workspace_id="w1",
        data=SentEmail(send_request_id="sr-1", thread_id="t-1", message=mail("s")),
    )

    await service.deliver(sent.model_dump_json(by_alias=True).encode(), sent.type)

    assert service.requests.asked == [("w1", "<s@client.test>", "sr-1")]
    assert service.batches["w1"].logged == [("<s@client.test>", "t-1")]
    assert logged_ids(service.published) == ["<s@client.test>"]
    assert service.decisions == ["ack"]


@pytest.mark.parametrize(
    ("body", "event_type", "reason"),
    [
        (b'[{"type": "mailsync.message.captured.v1"}]', MessageCaptured.event_type, "Validation"),
        (b"{}", "mailsync.contact.captured.v1", "PermanentError: associate does not log"),
    ],
    ids=["invalid", "unknown-type"],
)
async def test_a_delivery_that_can_never_be_logged_is_dead_lettered_with_the_reason(
    service: Service, body: bytes, event_type: str, reason: str
) -> None:
    await service.deliver(body, event_type)

    (letter,) = service.dead_letters
    assert letter.body == body
    assert str(letter.headers[REASON_HEADER]).startswith(reason)
    assert "test.associate.shard-0" in str(letter.headers[QUEUE_HEADER])
    assert service.batches["w1"].logged == []
    assert service.decisions == ["ack"], "acknowledged once it is dead-lettered"


async def test_a_delivery_whose_messages_all_fail_is_requeued(service: Service) -> None:
    service.batches["w1"].failing = {"<a@client.test>": ConnectionError("store unreachable")}

    with pytest.raises(ConnectionError):
        await service.deliver(as_list(captured("a")), MessageCaptured.event_type)

    assert service.decisions == ["nack"]
    assert service.dead_letters == []
    assert service.published == []


async def test_the_failed_message_of_a_delivery_goes_back_alone_and_the_rest_is_acknowledged(
    service: Service,
) -> None:
    service.batches["w1"].failing = {"<b@client.test>": ConnectionError("store unreachable")}
    events = captured("a", "b")

    await service.deliver(as_list(events), MessageCaptured.event_type)

    assert logged_ids(service.published) == ["<a@client.test>"]
    assert [e["id"] for e in service.work] == [events[1].id], "published again on its own"
    assert service.decisions == ["ack"]


def test_every_shard_queue_has_the_handler() -> None:
    unused: AsyncMongoClient[Document] = AsyncMongoClient("mongodb://127.0.0.1:9", connect=False)
    router, shards = associate_router(
        Intake(BatchLogbook(MemoryBatches(), AsyncMock()), SendRequests().complete, AsyncMock()),
        unused["unused"],
    )
    queues = sorted(subscriber.queue.name for subscriber in router.subscribers)  # type: ignore[attr-defined]
    assert queues == sorted(c.queue.name for c in ASSOCIATE_SHARDS.shards)
    assert shards.consuming == set(range(len(ASSOCIATE_SHARDS.shards)))
