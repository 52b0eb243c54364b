"""The shared topology and dead-lettering against the real RabbitMQ."""

import asyncio
import uuid
from typing import Any

import aio_pika
import pytest
from faststream import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitQueue

from mailsync_shared.contracts.envelope import Event
from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.contracts.records import (
    AssociatedThread,
    EmailLogged,
    ThreadAssociated,
)
from mailsync_shared.messaging import (
    QUEUE_HEADER,
    REASON_HEADER,
    DeadLetterPermanentErrors,
    EventPublisher,
    PermanentError,
)
from mailsync_shared.settings import ServiceSettings
from mailsync_shared.storage.documents import Visibility
from mailsync_shared.topology import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    WORK_EXCHANGE,
    WORKSPACE_HEADER,
    Consumer,
    declare_topology,
    work_queue,
)
from mailsync_shared.worker_wiring import WorkerWiring
from tests.support.events import logged_email
from tests.support.infra import Infra
from tests.support.polling import eventually
from tests.unit.shared.test_contracts import make_message

pytestmark = pytest.mark.integration


async def take_one(channel: aio_pika.abc.AbstractChannel, queue_name: str) -> Any:
    queue = await channel.get_queue(queue_name, ensure=False)
    for _ in range(100):
        message = await queue.get(fail=False, no_ack=True)
        if message is not None:
            return message
        await asyncio.sleep(0.1)
    raise AssertionError(f"nothing arrived in {queue_name}")


async def test_rejected_input_is_dead_lettered_with_its_reason(infra: Infra) -> None:
    workspace = f"ws{uuid.uuid4().hex}"
    queue = work_queue(f"mailsync.test.{uuid.uuid4().hex}", MessageFetched)
    broker = RabbitBroker(infra.rabbitmq_url, middlewares=[DeadLetterPermanentErrors])
    handled: list[str] = []

    @broker.subscriber(queue, WORK_EXCHANGE, ack_policy=AckPolicy.NACK_ON_ERROR)
    async def handle(event: MessageFetched) -> None:
        handled.append(event.data.message_id)
        if event.data.subject == "poison":
            raise PermanentError("subject says poison")

    connection = await aio_pika.connect_robust(infra.rabbitmq_url)
    channel = await connection.channel()
    async with broker:
        await declare_topology(broker)
        spy = await channel.declare_queue(exclusive=True)
        await spy.bind(DEAD_LETTER_EXCHANGE.name, routing_key=f"#.{workspace}")
        await broker.start()
        publisher = EventPublisher(broker, [MessageFetched])
        await publisher.publish(
            MessageFetched.create(
                source="/test", workspace_id=workspace, data=make_message(subject="poison")
            )
        )
        await broker.publish(
            b'{"not": "an event"}',
            exchange=WORK_EXCHANGE,
            routing_key=f"mailsync.message.fetched.v1.{workspace}",
        )
        await publisher.publish(
            MessageFetched.create(
                source="/test",
                workspace_id=workspace,
                data=make_message(message_id="<ok@client.test>"),
            )
        )
        first = await take_one(channel, spy.name)
        second = await take_one(channel, spy.name)
        for _ in range(50):
            if "<ok@client.test>" in handled:
                break
            await asyncio.sleep(0.1)
    reasons = sorted(str(m.headers[REASON_HEADER]) for m in (first, second))
    assert reasons[0].startswith("PermanentError: subject says poison")
    assert reasons[1].startswith("ValidationError")
    assert all(queue.name in str(m.headers[QUEUE_HEADER]) for m in (first, second))
    assert "<ok@client.test>" in handled, "the queue kept flowing after the bad messages"
    await channel.queue_delete(queue.name)
    await connection.close()


async def test_work_queues_are_quorum_queues_with_a_delivery_limit(infra: Infra) -> None:
    broker = RabbitBroker(infra.rabbitmq_url)
    async with broker:
        await declare_topology(broker)
        name = f"mailsync.test.{uuid.uuid4().hex}"
        declared = work_queue(name, MessageFetched)
        await broker.declare_queue(declared)
        # Re-declaring with other arguments fails: the broker holds exactly these.
        with pytest.raises(Exception, match="PRECONDITION_FAILED"):
            await broker.declare_queue(RabbitQueue(name, durable=True))
    connection = await aio_pika.connect_robust(infra.rabbitmq_url)
    channel = await connection.channel()
    await channel.queue_delete(name)
    await connection.close()


async def test_a_service_subscriber_holds_no_more_deliveries_than_its_prefetch(
    infra: Infra,
) -> None:
    consumer = Consumer(
        work_queue(f"mailsync.test.{uuid.uuid4().hex}", MessageFetched),
        WORK_EXCHANGE,
        MessageFetched,
    )
    wiring = WorkerWiring.from_settings(
        ServiceSettings(rabbitmq_url=infra.rabbitmq_url, mongodb_url=infra.mongodb_url),
        prefetch=3,
    )
    release = asyncio.Event()
    running: list[str] = []
    peak = 0
    done: list[str] = []

    @consumer.subscriber(wiring.broker, title="test.prefetch")
    async def handle(event: MessageFetched) -> None:
        nonlocal peak
        running.append(event.data.message_id)
        peak = max(peak, len(running))
        await release.wait()
        running.remove(event.data.message_id)
        done.append(event.data.message_id)

    workspace = f"ws{uuid.uuid4().hex}"
    async with wiring.broker:
        # As at a service's start: the queue is declared before its subscriber starts.
        await wiring.broker.connect()
        await wiring.broker.declare_exchange(WORK_EXCHANGE)
        queue = await wiring.broker.declare_queue(consumer.queue)
        await queue.bind(WORK_EXCHANGE.name, routing_key=consumer.queue.routing())
        await wiring.broker.start()
        publisher = EventPublisher(wiring.broker, [MessageFetched])
        for number in range(10):
            message = make_message(message_id=f"<{number}@client.test>")
            await publisher.publish(
                MessageFetched.create(source="/test", workspace_id=workspace, data=message)
            )

        await eventually(lambda: _at(running, 3), what="three deliveries held")
        await asyncio.sleep(0.5)
        assert peak == 3, "a fourth delivery arrived before one was acknowledged"
        release.set()
        await eventually(lambda: _at(done, 10), what="all ten handled")
        await queue.delete(if_unused=False, if_empty=False)
    await wiring.close_database()


async def _at(items: list[str], count: int) -> bool:
    return len(items) >= count


def thread_associated(workspace: str) -> ThreadAssociated:
    return ThreadAssociated.create(
        source="/test",
        workspace_id=workspace,
        data=AssociatedThread(
            thread_id="t1", contact_ids=["c1"], company_ids=[], deal_ids=[], reasons=[]
        ),
    )


def published_total(wiring: WorkerWiring) -> float:
    return sum(
        sample.value
        for metric in wiring.metrics.registry.collect()
        for sample in metric.samples
        if sample.name == "mailsync_published_messages_total"
    )


async def test_events_published_each_go_out_in_order_as_publish_sends_them(infra: Infra) -> None:
    workspace = f"ws{uuid.uuid4().hex}"
    settings = ServiceSettings(rabbitmq_url=infra.rabbitmq_url, mongodb_url=infra.mongodb_url)
    wiring = WorkerWiring.from_settings(settings)
    publisher = EventPublisher(wiring.broker, [EmailLogged, ThreadAssociated])
    events: list[tuple[Event, Visibility | None]] = [
        (logged_email(workspace, 1), "metadata"),
        (thread_associated(workspace), "metadata"),
        (logged_email(workspace, 2), None),
    ]
    connection = await aio_pika.connect_robust(infra.rabbitmq_url)
    channel = await connection.channel()
    async with wiring.broker:
        await declare_topology(wiring.broker)
        spy = await channel.declare_queue(exclusive=True)
        await spy.bind(EVENTS_EXCHANGE.name, routing_key=f"#.{workspace}")
        await wiring.broker.start()
        before = published_total(wiring)
        outcomes = await publisher.publish_each(events)
        counted = published_total(wiring) - before
        for event, level in events:
            await publisher.publish(event, level=level)
        received = [await take_one(channel, spy.name) for _ in range(2 * len(events))]
    await connection.close()

    assert outcomes == [None, None, None]
    assert counted == len(events), "every message counted, not every pass"
    each, one_by_one = received[: len(events)], received[len(events) :]
    assert [m.message_id for m in each] == [event.id for event, _ in events]
    for mine, theirs in zip(each, one_by_one, strict=True):
        assert mine.body == theirs.body
        assert mine.routing_key == theirs.routing_key
        assert (mine.type, mine.content_type, mine.delivery_mode, mine.message_id) == (
            theirs.type,
            theirs.content_type,
            theirs.delivery_mode,
            theirs.message_id,
        )
        assert mine.headers.get(WORKSPACE_HEADER) == workspace
        assert mine.headers.keys() == theirs.headers.keys()
    assert b"Message 1" not in each[0].body, "cut to the mailbox's level"
