"""Publishing events reliably and dead-lettering input that can never succeed."""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from functools import partial
from typing import Any

from faststream import BaseMiddleware, PublishType
from faststream.message import StreamMessage
from faststream.rabbit import RabbitBroker
from faststream.rabbit.publisher import RabbitPublisher
from faststream.rabbit.response import RabbitPublishCommand
from pydantic import ValidationError

from mailsync_shared.contracts.envelope import Event
from mailsync_shared.event_privacy import event_level, public_copy
from mailsync_shared.ids import new_id
from mailsync_shared.storage.documents import Visibility
from mailsync_shared.topology import (
    DEAD_LETTER_EXCHANGE,
    HINTS,
    INTERNAL_EVENTS,
    WORKSPACE_HEADER,
    exchange_for,
)

logger = logging.getLogger(__name__)

# Events per message when a batch travels together (`EventPublisher.publish_together`).
EVENTS_PER_MESSAGE = 100

REASON_HEADER = "x-mailsync-reason"
QUEUE_HEADER = "x-mailsync-queue"


class PermanentError(Exception):
    """The message can never be processed; it is dead-lettered with this error as the reason."""


# Each event's outcome, in order: None once the broker confirmed it, else the error.
Outcomes = list[BaseException | None]


class _Pass(RabbitPublishCommand):
    """Many messages of one event type passing the broker's publish middlewares once.

    The trace middleware adds its span's context to these headers, which each message then
    carries, and reads the message count before publishing (above one, it would mark the
    messages a batch, which they are not); the metrics middleware reads it after publishing,
    when it is every message sent."""

    sent: tuple[Any, ...] = ()

    @property
    def batch_bodies(self) -> tuple[Any, ...]:
        return self.sent or super().batch_bodies


class _Then:
    """A producer for one pass: publishing it runs the next pass, or the messages."""

    def __init__(self, then: Callable[[], Awaitable[None]]) -> None:
        self._then = then

    async def publish(self, _: RabbitPublishCommand) -> None:
        await self._then()


def _mandatory(event: Event) -> bool:
    """Whether the broker should return the event when no queue takes it: work, yes; a public
    event nobody subscribed to, or a hint no worker listens for, is simply not delivered, and
    its return would only cost the broker and the publisher a frame each."""
    return type(event) in INTERNAL_EVENTS and type(event) not in HINTS


class EventPublisher:
    """Publishes events as persistent messages and waits for the broker's confirm.

    One FastStream publisher per event type documents the channel in the AsyncAPI schema.
    """

    def __init__(self, broker: RabbitBroker, event_types: Iterable[type[Event]]) -> None:
        self._broker = broker
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

    async def publish_each(self, events: Sequence[tuple[Event, Visibility | None]]) -> Outcomes:
        """Publish events in order, each as the message of its own that `publish` sends, cut
        to its level the same way, and wait for each confirm; each event's outcome.

        The broker's middlewares (a trace span, the metrics) run once per event type for all
        the events rather than once per event: the events go out from within every type's
        pass, straight through the broker's producer."""
        public = [public_copy(event, event_level(level)) for event, level in events]
        bodies = [event.model_dump_json(by_alias=True).encode() for event in public]
        passes: dict[str, _Pass] = {}
        for event, body in zip(public, bodies, strict=True):
            if event.type not in passes:
                passes[event.type] = self._pass(event, body)
        outcomes: Outcomes = []

        async def send() -> None:
            producer = self._broker.config.producer
            commands = [
                self._command(event, body, passes[event.type].headers)
                for event, body in zip(public, bodies, strict=True)
            ]
            sent = await asyncio.gather(*map(producer.publish, commands), return_exceptions=True)
            outcomes.extend(r if isinstance(r, BaseException) else None for r in sent)
            for event_type, each in passes.items():
                each.sent = tuple(
                    b for e, b in zip(public, bodies, strict=True) if e.type == event_type
                )
            if failed := next((r for r in outcomes if isinstance(r, Exception)), None):
                raise failed  # the pass is recorded as failed

        step: Callable[[], Awaitable[None]] = send
        for event_type, each in reversed(passes.items()):
            step = partial(self._through_middlewares, event_type, each, step)
        try:
            await step()
        except Exception as error:
            if not outcomes:
                return [error] * len(public)
        return outcomes

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

    def _pass(self, event: Event, body: bytes) -> _Pass:
        return _Pass(
            body,
            routing_key=event.routing_key,
            exchange=exchange_for(type(event)),
            headers={WORKSPACE_HEADER: event.workspaceid},
            content_type="application/json",
            message_type=event.type,
            persist=True,
            _publish_type=PublishType.PUBLISH,
        )

    @staticmethod
    def _command(event: Event, body: bytes, headers: dict[str, Any]) -> RabbitPublishCommand:
        """What `publish` has the producer send for the event."""
        return RabbitPublishCommand(
            body,
            routing_key=event.routing_key,
            exchange=exchange_for(type(event)),
            headers={**headers, WORKSPACE_HEADER: event.workspaceid},
            message_id=event.id,
            content_type="application/json",
            message_type=event.type,
            persist=True,
            mandatory=_mandatory(event),
            _publish_type=PublishType.PUBLISH,
        )

    async def _through_middlewares(
        self, event_type: str, each: _Pass, then: Callable[[], Awaitable[None]]
    ) -> None:
        publisher = self._publishers.get(event_type)
        if publisher is None:
            raise KeyError(f"no publisher registered for {event_type}")
        producer: Any = _Then(then)
        await publisher._basic_publish(each, producer=producer, _extra_middlewares=())

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
            mandatory=_mandatory(event),
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
