"""A shard queue's deliveries reach the batching in the order the queue delivered them, through
FastStream's in-memory broker and its real path from a delivery to the handler, where the
handler's `RabbitMessage` argument is resolved in a worker thread and a later delivery can
overtake an earlier one."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any
from unittest.mock import AsyncMock, patch

import fast_depends.utils
from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.annotations import RabbitMessage
from faststream.rabbit.testing import TestRabbitBroker
from pymongo import AsyncMongoClient

from mailsync_shared.batching import Batcher
from mailsync_shared.contracts.mail import MailMessage, MessageFetched
from mailsync_shared.delivery_order import DeliveryOrder, in_turn
from mailsync_shared.shard_consumers import ShardConsumers
from mailsync_shared.storage.client import Document
from mailsync_shared.topology import WORKSPACE_HEADER, Consumer, Sharded
from mailsync_shared.work_batches import events_in, submit_delivery
from tests.support.polling import eventually

# The in-memory broker knows no consistent-hash exchange: one shard behind a direct exchange.
EXCHANGE = RabbitExchange("test.order.shards", type=ExchangeType.DIRECT)
SHARDED = Sharded(
    "capture",
    EXCHANGE,
    (MessageFetched,),
    (Consumer(RabbitQueue("test.order.shard-0", routing_key="shard-0"), EXCHANGE, MessageFetched),),
)


@dataclass
class Batches:
    """What was handed to the batcher, what each batch held, in order; a batch waits while
    `held` is clear."""

    submitted: list[str] = field(default_factory=list)
    taken: list[list[str]] = field(default_factory=list)
    held: asyncio.Event = field(default_factory=asyncio.Event)

    def count(self, *, taken: int = 0, submitted: int = 0) -> Callable[[], Awaitable[bool]]:
        async def reached() -> bool:
            return len(self.taken) >= taken and len(self.submitted) >= submitted

        return reached

    async def process(self, _: str, items: Sequence[str]) -> list[None]:
        self.taken.append(list(items))
        await self.held.wait()
        return [None] * len(items)


class Recording(Batcher[str, None]):
    def __init__(self, batches: Batches) -> None:
        super().__init__(batches.process)
        self._submitted = batches.submitted

    def put(self, key: str, item: str) -> asyncio.Future[None]:
        self._submitted.append(item)
        return super().put(key, item)


@asynccontextmanager
async def shard_service(batches: Batches) -> AsyncIterator[RabbitBroker]:
    """One shard consumer whose handler hands each delivery's events to a batcher."""
    batcher = Recording(batches)

    async def on_delivery(message: RabbitMessage) -> None:
        events = events_in(message.body, MessageFetched)
        await submit_delivery(batcher, events, lambda e: e.data.message_id, AsyncMock())

    broker = RabbitBroker()
    # The leases are never taken (`start` is not called), so their store is never reached.
    unused: AsyncMongoClient[Document] = AsyncMongoClient("mongodb://127.0.0.1:9", connect=False)
    ShardConsumers(broker, unused["unused"], SHARDED, on_delivery)
    async with TestRabbitBroker(broker) as test_broker:
        yield test_broker
    await unused.close()


@contextmanager
def first_resolved_last() -> Iterator[None]:
    """FastDepends resolves each delivery's `RabbitMessage` in a worker thread; here the first
    delivery's thread finishes only after the second's, as a busy pool may have it."""
    resolve = fast_depends.utils.run_in_threadpool
    second_done = asyncio.Event()
    calls = 0

    async def in_threads(func: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            await second_done.wait()
            return await resolve(func, *args, **kwargs)
        result = await resolve(func, *args, **kwargs)
        second_done.set()
        return result

    with patch.object(fast_depends.utils, "run_in_threadpool", in_threads):
        yield


def fetched(message_id: str) -> MessageFetched:
    data = {
        "mailbox_id": "mb",
        "owner_address": "owner@acme.test",
        "direction": "sent",
        "raw_id": f"raw-{message_id}",
        "size": 100,
        "message_id": message_id,
        "from": {"address": "owner@acme.test"},
    }
    return MessageFetched.create(
        source="/test", workspace_id="w1", data=MailMessage.model_validate(data)
    )


async def deliver(broker: RabbitBroker, body: bytes) -> None:
    await broker.publish(
        body, exchange=EXCHANGE, routing_key="shard-0", headers={WORKSPACE_HEADER: "w1"}
    )


def body_of(message_id: str) -> bytes:
    return fetched(message_id).model_dump_json(by_alias=True).encode()


async def test_a_delivery_overtaken_on_the_way_to_its_handler_is_still_submitted_first() -> None:
    batches = Batches()
    batches.held.set()
    async with shard_service(batches) as broker:
        with first_resolved_last():
            await asyncio.gather(deliver(broker, body_of("<a>")), deliver(broker, body_of("<b>")))

    assert [item for batch in batches.taken for item in batch] == ["<a>", "<b>"]


async def test_the_next_deliveries_join_the_next_batch_while_one_runs() -> None:
    batches = Batches()
    async with shard_service(batches) as broker:
        first = asyncio.create_task(deliver(broker, body_of("<a>")))
        await eventually(batches.count(taken=1), timeout=5, interval=0.001, what="first batch")
        later = [asyncio.create_task(deliver(broker, body_of(f"<{n}>"))) for n in "bcd"]
        # Every later delivery is handed over while the first batch is still held.
        await eventually(batches.count(submitted=4), timeout=5, interval=0.001, what="handed")
        batches.held.set()
        await asyncio.gather(first, *later)

    assert batches.taken == [["<a>"], ["<b>", "<c>", "<d>"]]


async def test_a_delivery_that_fails_before_its_turn_holds_none_back() -> None:
    batches = Batches()
    batches.held.set()
    async with shard_service(batches) as broker:
        outcomes = await asyncio.gather(
            deliver(broker, b"not json"), deliver(broker, body_of("<b>")), return_exceptions=True
        )

    assert isinstance(outcomes[0], Exception), "the bad delivery fails"
    assert batches.taken == [["<b>"]]


async def test_outside_a_delivery_the_turn_is_at_once() -> None:
    async with asyncio.timeout(1):
        async with in_turn():
            pass


async def test_a_turn_passed_early_is_passed_on_only_after_the_turns_before_it() -> None:
    order = DeliveryOrder()
    first, second, third = (order.take("queue") for _ in range(3))
    second.pass_on()  # its delivery failed, say, before the first submitted
    waiting = asyncio.create_task(third.wait())
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not waiting.done()
    assert not second.passed.done(), "the second waits for the first"

    first.pass_on()
    await asyncio.wait_for(waiting, timeout=1)
    assert second.passed.done()
