"""Publishing events reliably and dead-lettering input that can never succeed."""

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from faststream import BaseMiddleware
from faststream.message import StreamMessage
from faststream.rabbit import RabbitBroker
from faststream.rabbit.publisher import RabbitPublisher
from pydantic import ValidationError

from mailsync_shared.contracts.envelope import Event
from mailsync_shared.event_privacy import event_level, public_copy
from mailsync_shared.ids import new_id
from mailsync_shared.storage.documents import Visibility
from mailsync_shared.topology import DEAD_LETTER_EXCHANGE, WORKSPACE_HEADER, exchange_for

logger = logging.getLogger(__name__)

# Events per message when a batch travels together (`EventPublisher.publish_together`).
EVENTS_PER_MESSAGE = 100

REASON_HEADER = "x-mailsync-reason"
QUEUE_HEADER = "x-mailsync-queue"


class PermanentError(Exception):
    """The message can never be processed; it is dead-lettered with this error as the reason."""


class EventPublisher:
    """Publishes events as persistent messages and waits for the broker's confirm.

    One FastStream publisher per event type documents the channel in the AsyncAPI schema.
    """

    def __init__(self, broker: RabbitBroker, event_types: Iterable[type[Event]]) -> None:
        self._publishers: dict[str, RabbitPublisher] = {
            event_type.event_type: broker.publisher(
                exchange=exchange_for(event_type),
                routing_key=f"{event_type.event_type}.{{workspaceid}}",
                schema=event_type,
                title=event_type.event_type,
                description=(event_type.__doc__ or "").strip(),
                persist=True,
            )
            for event_type in event_types
        }

    async def publish(self, event: Event, *, level: Visibility | None = None) -> None:
        """A public event goes out cut to what mail at `level` publishes
        (`mailsync_shared.event_privacy`); without a level, to what private mail publishes."""
        event = public_copy(event, event_level(level))
        await self._send(event, event.model_dump_json(by_alias=True).encode(), event.id)

    async def publish_together(self, events: Sequence[Event]) -> None:
        """Publish events of one type and workspace in order, as few messages: each body is a
        JSON array of up to `EVENTS_PER_MESSAGE` events. For internal work queues only, whose
        consumers accept an event or a list of them (`mailsync_shared.work_batches`)."""
        for start in range(0, len(events), EVENTS_PER_MESSAGE):
            chunk = events[start : start + EVENTS_PER_MESSAGE]
            if {(event.type, event.workspaceid) for event in chunk} != {
                (chunk[0].type, chunk[0].workspaceid)
            }:
                raise ValueError("events published together share one type and workspace")
            body = b",".join(event.model_dump_json(by_alias=True).encode() for event in chunk)
            await self._send(chunk[0], b"[" + body + b"]", new_id())

    async def _send(self, event: Event, body: bytes, message_id: str) -> None:
        publisher = self._publishers.get(event.type)
        if publisher is None:
            raise KeyError(f"no publisher registered for {event.type}")
        await publisher.publish(
            body,
            routing_key=event.routing_key,
            message_id=message_id,
            content_type="application/json",
            message_type=event.type,
            headers={WORKSPACE_HEADER: event.workspaceid},
            persist=True,
        )


class DeadLetterPermanentErrors(BaseMiddleware):
    """Routes messages that fail validation or raise `PermanentError` to the dead-letter
    exchange with the reason in a header, then acknowledges them so the queue moves on.

    Other exceptions propagate: the message is requeued and, after the queue's delivery
    limit, dead-lettered by RabbitMQ itself.
    """

    async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
        try:
            return await call_next(msg)
        except (PermanentError, ValidationError) as error:
            raw = msg.raw_message
            queue = str(getattr(self.context.get("handler_"), "queue", ""))
            reason = f"{type(error).__name__}: {error}"[:2000]
            logger.warning(
                "dead-lettering message",
                extra={"message_id": msg.message_id, "reason": reason, "queue": queue},
            )
            broker: RabbitBroker = self.context.get("broker")
            await broker.publish(
                msg.body,
                exchange=DEAD_LETTER_EXCHANGE,
                routing_key=getattr(raw, "routing_key", None) or "unrouted",
                headers={**(msg.headers or {}), REASON_HEADER: reason, QUEUE_HEADER: queue},
                message_id=msg.message_id,
                content_type=msg.content_type,
                persist=True,
            )
            return None
