"""Capture's router in FastStream's in-memory broker: a delivery on a shard queue decoded,
captured over in-memory data, its events published, and the delivery settled."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from faststream.rabbit import RabbitBroker
from pymongo import AsyncMongoClient

from mailsync_capture.batch_capture import BatchCapture
from mailsync_capture.handlers import CaptureHandlers, capture_router
from mailsync_shared.capture_policy.rules import free_mail_domains
from mailsync_shared.contracts.mail import MessageCaptured, MessageFetched
from mailsync_shared.contracts.records import ContactCaptured
from mailsync_shared.messaging import (
    QUEUE_HEADER,
    REASON_HEADER,
    DeadLetterPermanentErrors,
    EventPublisher,
)
from mailsync_shared.storage.client import Document
from mailsync_shared.topology import (
    CAPTURE_SHARDS,
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    WORK_EXCHANGE,
)
from tests.support.in_memory_broker import (
    Received,
    Settlements,
    collect,
    deliver_to_shard,
    in_memory,
)
from tests.unit.capture.memory import MemoryCaptureSource, MemoryWorkspace, MemoryWorkspaces
from tests.unit.capture.test_batch_capture import MAILBOX, WS, fetched, rules


@dataclass
class Running:
    broker: RabbitBroker
    source: MemoryCaptureSource
    settled: Settlements
    captured: list[Received]
    contacts: list[Received]
    retried: list[Received]
    dead_letters: list[Received]

    async def deliver(self, body: bytes) -> None:
        await deliver_to_shard(self.broker, CAPTURE_SHARDS, body, WS)

    def outcomes(self) -> list[str]:
        """How capture's deliveries were settled."""
        return list(self.settled.outcomes(CAPTURE_SHARDS.exchange))


def body_of(*events: MessageFetched) -> bytes:
    return json.dumps([event.model_dump(mode="json", by_alias=True) for event in events]).encode()


def message_ids(received: list[Received]) -> list[str]:
    events = [event for message in received for event in message.json()]
    return [event["data"]["message"]["message_id"] for event in events]


@pytest.fixture(name="capture")
async def capture_fixture() -> AsyncIterator[Running]:
    broker = RabbitBroker(middlewares=[DeadLetterPermanentErrors])
    publisher = EventPublisher(broker, [MessageCaptured, ContactCaptured, MessageFetched])
    source = MemoryCaptureSource(WS, rules=rules(policy="sent"), broken=["bad@client.test"])
    workspace = MemoryWorkspace(source, {MAILBOX: {"visibility": "workspace"}})
    capture = BatchCapture(MemoryWorkspaces(workspace), publisher, free_mail_domains())
    handlers = CaptureHandlers(capture, publisher.publish, batch_size=50)
    # Only the shard leases would use the database, and the in-memory broker takes none.
    unused: AsyncMongoClient[Document] = AsyncMongoClient("mongodb://unused.invalid", connect=False)
    broker.include_router(capture_router(handlers, unused["capture"]).router)
    running = Running(
        broker,
        source,
        Settlements(),
        captured=collect(broker, WORK_EXCHANGE, "mailsync.message.captured.v1.*"),
        contacts=collect(broker, EVENTS_EXCHANGE, "mailsync.contact.captured.v1.*"),
        retried=collect(broker, WORK_EXCHANGE, "mailsync.message.fetched.v1.*"),
        dead_letters=collect(broker, DEAD_LETTER_EXCHANGE, "#"),
    )
    async with in_memory(broker) as settled:
        running.settled = settled
        yield running
    await unused.close()


async def test_a_delivery_is_captured_passed_on_in_order_and_acknowledged(
    capture: Running,
) -> None:
    messages = [fetched(), fetched(to=[{"address": "dana@newco.test"}]), fetched()]

    await capture.deliver(body_of(*messages))

    assert message_ids(capture.captured) == [m.data.message_id for m in messages]
    announced = sorted(message.json()["data"]["address"] for message in capture.contacts)
    assert announced == ["ann@client.test", "dana@newco.test"]
    assert capture.outcomes() == ["ack"]
    assert capture.source.decided(messages[1].data.message_id)["dana@newco.test"][0] == ("captured")


async def test_a_single_event_delivery_is_captured_too(capture: Running) -> None:
    message = fetched()

    await capture.deliver(message.model_dump_json(by_alias=True).encode())

    assert message_ids(capture.captured) == [message.data.message_id]
    assert capture.outcomes() == ["ack"]


async def test_an_invalid_delivery_is_dead_lettered_with_the_reason(capture: Running) -> None:
    body = fetched().model_dump(mode="json", by_alias=True)
    del body["data"]["message_id"]

    await capture.deliver(json.dumps(body).encode())

    [letter] = capture.dead_letters
    assert letter.json()["id"] == body["id"]
    assert str(letter.headers[REASON_HEADER]).startswith("ValidationError")
    assert "mailsync.capture.shard-" in str(letter.headers[QUEUE_HEADER])
    assert capture.captured == []
    assert capture.source.calls["record_decisions"] == 0
    assert capture.outcomes() == ["ack"], "settled here, kept in the dead-letter queue"


async def test_a_delivery_whose_every_message_fails_is_returned_to_the_queue(
    capture: Running,
) -> None:
    bad = fetched(to=[{"address": "bad@client.test"}])

    with pytest.raises(ConnectionError):
        await capture.deliver(body_of(bad))

    assert capture.outcomes() == ["nack"], "requeued, dead-lettered after the limit"
    assert capture.captured == []


async def test_a_failed_message_is_retried_alone_and_the_rest_acknowledged(
    capture: Running,
) -> None:
    good, bad = fetched(), fetched(to=[{"address": "bad@client.test"}])

    await capture.deliver(body_of(good, bad))

    assert message_ids(capture.captured) == [good.data.message_id]
    assert [message.json()["data"]["message_id"] for message in capture.retried] == [
        bad.data.message_id
    ]
    assert capture.outcomes() == ["ack"]
