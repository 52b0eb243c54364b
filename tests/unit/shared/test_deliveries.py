"""A handler taking `Delivery` gets the delivery itself, with no worker thread on the way."""

from unittest.mock import patch

import fast_depends.utils
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.testing import TestRabbitBroker

from mailsync_shared.deliveries import Delivery, as_delivered

QUEUE = RabbitQueue("test.deliveries")


async def test_the_handler_gets_the_delivery_without_a_worker_thread() -> None:
    broker = RabbitBroker()
    received: list[tuple[bytes, str | None]] = []

    @broker.subscriber(QUEUE, decoder=as_delivered)
    async def handle(message: Delivery) -> None:
        received.append((message.body, message.raw_message.type))

    in_thread = AssertionError("a delivery was resolved in a worker thread")
    with patch.object(fast_depends.utils, "run_in_threadpool", side_effect=in_thread) as threads:
        async with TestRabbitBroker(broker) as test_broker:
            await test_broker.publish(b'[{"n": 1}]', queue=QUEUE, message_type="test.event")

    assert received == [(b'[{"n": 1}]', "test.event")]
    threads.assert_not_called()
