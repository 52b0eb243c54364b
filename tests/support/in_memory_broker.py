"""FastStream's in-memory RabbitMQ (`TestRabbitBroker`) for the services' routers.

It routes by exchange type but knows no consistent-hash exchange, so capture's and
associate's shard exchanges (`mailsync_shared.topology.SHARDED`) are routed here as RabbitMQ
routes them: a message goes to the one shard queue its workspace header hashes to (the hash
differs from RabbitMQ's ring; one workspace still always lands in one shard). Every
delivery's acknowledgement is recorded (`Settlements`). The in-memory broker does not
redeliver: a nacked delivery's requeue, and dead-lettering after the delivery limit, are
RabbitMQ's and tested against it.
"""

import json
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal
from unittest.mock import patch

from faststream.rabbit import ExchangeType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit import testing as rabbit_testing
from faststream.rabbit.annotations import RabbitMessage as Delivery
from faststream.rabbit.message import RabbitMessage
from faststream.rabbit.testing import TestRabbitBroker

from mailsync_shared.topology import SHARDED, WORKSPACE_HEADER, Sharded

Outcome = Literal["ack", "nack", "reject"]


@dataclass(frozen=True)
class Settlement:
    exchange: str
    body: bytes
    outcome: Outcome


@dataclass
class Settlements:
    """How each delivery handled in memory was settled, in order."""

    settled: list[Settlement] = field(default_factory=list)

    def outcomes(self, exchange: RabbitExchange) -> list[Outcome]:
        """How the deliveries published to `exchange` were settled."""
        return [s.outcome for s in self.settled if s.exchange == exchange.name]


def shard_queue(sharded: Sharded, workspace_id: str) -> str:
    """The shard queue a workspace's messages go to in memory."""
    index = zlib.crc32(workspace_id.encode()) % len(sharded.shards)
    return sharded.shards[index].queue.name


@contextmanager
def _shard_routing() -> Iterator[None]:
    by_exchange = {sharded.exchange.name: sharded for sharded in SHARDED}
    matches = rabbit_testing._is_handler_matches

    def shard_matches(
        handler: Any,
        routing_key: str,
        headers: Mapping[Any, Any] | None = None,
        exchange: RabbitExchange | None = None,
    ) -> bool:
        if handler.exchange.type != ExchangeType.X_CONSISTENT_HASH:
            return matches(handler, routing_key, headers, exchange)
        name = RabbitExchange.validate(exchange).name if exchange is not None else ""
        sharded = by_exchange.get(name)
        workspace_id = str((headers or {}).get(WORKSPACE_HEADER, ""))
        return (
            sharded is not None
            and handler.exchange.name == name
            and handler.queue.name == shard_queue(sharded, workspace_id)
        )

    with patch.object(rabbit_testing, "_is_handler_matches", shard_matches):
        yield


@contextmanager
def _recorded(settlements: Settlements) -> Iterator[None]:
    def recording(outcome: Outcome) -> Any:
        original = getattr(RabbitMessage, outcome)

        async def settle(self: RabbitMessage, *args: Any, **kwargs: Any) -> None:
            exchange = str(getattr(self.raw_message, "exchange", ""))
            settlements.settled.append(Settlement(exchange, self.body, outcome))
            await original(self, *args, **kwargs)

        return settle

    with (
        patch.object(RabbitMessage, "ack", recording("ack")),
        patch.object(RabbitMessage, "nack", recording("nack")),
        patch.object(RabbitMessage, "reject", recording("reject")),
    ):
        yield


@asynccontextmanager
async def in_memory(broker: RabbitBroker) -> AsyncIterator[Settlements]:
    """The broker running in memory, its subscribers started; how deliveries were settled."""
    settlements = Settlements()
    with _shard_routing(), _recorded(settlements):
        async with TestRabbitBroker(broker):
            yield settlements


async def deliver_to_shard(
    broker: RabbitBroker, sharded: Sharded, body: bytes, workspace_id: str
) -> None:
    """Publish a work message into a service's shard exchange, as the work exchange would."""
    await broker.publish(
        body,
        exchange=sharded.exchange,
        headers={WORKSPACE_HEADER: workspace_id},
        content_type="application/json",
    )


@dataclass(frozen=True)
class Received:
    body: bytes
    headers: Mapping[str, Any]

    def json(self) -> Any:
        return json.loads(self.body)


def collect(broker: RabbitBroker, exchange: RabbitExchange, binding: str) -> list[Received]:
    """The messages published to `exchange` matching `binding`, as they arrive. Declare
    before the broker starts."""
    received: list[Received] = []
    queue = RabbitQueue(f"test.{exchange.name}.{binding}", routing_key=binding)

    @broker.subscriber(queue, exchange)
    async def keep(message: Delivery) -> None:
        received.append(Received(message.body, dict(message.headers)))

    return received
