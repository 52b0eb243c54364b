"""Consuming exactly the shards this replica holds a lease on (`mailsync_shared.shard_leases`)."""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitRouter
from faststream.rabbit.subscriber import RabbitSubscriber
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.deliveries import as_delivered
from mailsync_shared.delivery_order import DeliveryOrder
from mailsync_shared.shard_leases import ShardLeases
from mailsync_shared.storage.client import Document
from mailsync_shared.topology import Sharded

logger = logging.getLogger(__name__)

Handler = Callable[..., Awaitable[None]]


DELIVERY_HOPS = 5  # loop turns for a delivery already received to enter its handler


class ShardConsumers:
    """Starts a subscriber on each shard this replica gains and stops it on each it loses.

    The subscribers are declared on `broker`, or on a router the service includes in its broker,
    which also gets the middleware giving each delivery its turn (`delivery_order`): a handler
    that submits `in_turn` hands a shard's deliveries on in the order the shard delivered them.
    The handler's argument is the delivery itself (`mailsync_shared.deliveries`).
    """

    def __init__(
        self,
        broker: RabbitBroker | RabbitRouter,
        db: AsyncDatabase[Document],
        sharded: Sharded,
        handler: Handler,
        *,
        every: float = 3.0,
        term: float = 15.0,
    ) -> None:
        self._broker = broker
        broker.add_middleware(DeliveryOrder().middleware())
        self._handler = handler
        self._every = every
        self._sharded = sharded
        self.leases = ShardLeases(
            db,
            sharded.service,
            f"{sharded.service}-{uuid.uuid4().hex[:12]}",
            len(sharded.shards),
            term=term,
        )
        # Declared with the broker, like any subscriber, so each is started with it; `start`
        # then stops those whose lease this replica does not hold. Until then a shard is at
        # worst consumed here while no other replica consumes it: the queue has a single
        # active consumer, the leases only spread the shards.
        self._all: dict[int, Any] = {}
        for index, consumer in enumerate(sharded.shards):
            subscriber: Any = broker.subscriber(
                consumer.queue,
                consumer.exchange,
                ack_policy=AckPolicy.NACK_ON_ERROR,
                decoder=as_delivered,
                title=consumer.queue.name,
            )
            subscriber(handler)
            self._all[index] = subscriber
        self._subscribers: dict[int, RabbitSubscriber] = dict(self._all)
        self._task: asyncio.Task[None] | None = None

    @property
    def consuming(self) -> set[int]:
        return set(self._subscribers)

    async def start(self) -> None:
        await self.step()
        for shard in set(self._subscribers) - self.leases.held:
            await self._stop_consuming(shard)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for shard in list(self._subscribers):
            await self._stop_consuming(shard)
        await self.leases.release_all()

    async def step(self) -> None:
        changes = await self.leases.step()
        for shard in changes.lost:
            await self._stop_consuming(shard)
            await self.leases.release(shard)
        for shard in changes.gained:
            await self._consume(shard)
        if changes.lost or changes.gained:
            logger.info(
                "shards changed",
                extra={
                    "service": self._sharded.service,
                    "replica": self.leases.replica_id,
                    "gained": changes.gained,
                    "lost": changes.lost,
                    "consuming": sorted(self._subscribers),
                },
            )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.step()
            except Exception:
                logger.exception("shard leases not renewed; trying again")

    async def _consume(self, shard: int) -> None:
        if shard in self._subscribers:
            return
        subscriber = self._all[shard]
        await subscriber.start()
        self._subscribers[shard] = subscriber

    async def _stop_consuming(self, shard: int) -> None:
        subscriber: Any = self._subscribers.pop(shard, None)
        if subscriber is None:
            return
        # Cancel at the broker first, and let every delivery that arrived before the cancel
        # was confirmed reach its handler: FastStream's stop() stops handling deliveries at
        # once, and one dropped then would stay unacknowledged (and reach the shard's next
        # owner out of order) until the connection closes. Each delivery takes two task hops
        # (aiormq, aio-pika) before it holds the subscriber's lock; stop() waits for the lock.
        queue, tag = subscriber._queue_obj, subscriber._consumer_tag
        if queue is not None and tag is not None:
            await queue.cancel(tag)
            subscriber._consumer_tag = None
        for _ in range(DELIVERY_HOPS):
            await asyncio.sleep(0)
        await subscriber.stop()
