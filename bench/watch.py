"""When each message first showed up as an event on the broker, seen from a queue of our own.

Watching events costs the pipeline almost nothing, unlike polling the store: a count over a
growing collection is a full read each time on a MongoDB-compatible server without indexes
on the filtered field, and would take its CPU from the services being measured.
"""

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

import aio_pika
from faststream.rabbit import RabbitExchange

from mailsync_shared.contracts.envelope import Event
from mailsync_shared.work_batches import events_in

EventT = TypeVar("EventT", bound=Event)


@asynccontextmanager
async def first_seen(
    rabbitmq_url: str,
    exchange: RabbitExchange,
    event_type: type[EventT],
    key: Callable[[EventT], str],
) -> AsyncIterator[dict[str, float]]:
    """`key(event)` -> `time.perf_counter()` when an event of that key was first published.

    A temporary queue bound to the exchange for the event type in every workspace; the dict
    fills while the context is open.
    """
    seen: dict[str, float] = {}
    connection = await aio_pika.connect_robust(rabbitmq_url)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange.name, routing_key=event_type.binding_key())

        async def note(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            at = time.perf_counter()
            for event in events_in(message.body, event_type):
                seen.setdefault(key(event), at)
            await message.ack()

        await queue.consume(note)
        yield seen
    finally:
        await connection.close()
