"""Prometheus metrics of a service, served at `/metrics`.

Each app owns a `ServiceMetrics` with its own registry (tests build several apps in one
process). FastStream's Prometheus middleware counts and times what the broker consumes and
publishes; its labels name the work queue a message was consumed from and the event type a
message was published as, never a workspace (routing keys end with the workspace id).
"""

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from aio_pika import IncomingMessage
from faststream import BaseMiddleware
from faststream.message import StreamMessage
from faststream.prometheus import ConsumeAttrs, MetricsSettingsProvider
from faststream.prometheus.middleware import PrometheusMiddleware
from faststream.rabbit.response import RabbitPublishCommand
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    make_asgi_app,
)
from pydantic import ValidationError

from mailsync_shared.messaging import PermanentError
from mailsync_shared.topology import CONSUMERS, EVENTS_EXCHANGE, SHARDED, exchange_for

PREFIX = "mailsync"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
AsgiApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def event_type_of(routing_key: str) -> str:
    """`<event type>.<workspace id>` without the workspace."""
    return routing_key.rsplit(".", 1)[0] if routing_key.count(".") > 1 else routing_key


def queue_of(exchange: str, routing_key: str, *, public_events_from: str | None = None) -> str:
    """The work queue a delivery came from, known by its exchange and event type; for a
    sharded service's work, its shards' exchange (`mailsync.<service>.shards`), which stands
    for all of its shard queues (a label per shard would name nothing an operator acts on).

    A service that takes public events off a queue of its own (send's webhook events) names
    it in `public_events_from`: the same event types reach associate's shards too, so the
    exchange and type alone would not tell the two apart."""
    if public_events_from is not None and exchange == EVENTS_EXCHANGE.name:
        return public_events_from
    event_type = event_type_of(routing_key)
    for consumer in CONSUMERS:
        if consumer.exchange.name == exchange and consumer.event_type.event_type == event_type:
            return consumer.queue.name
    for service in SHARDED:
        for event in service.events:
            if exchange_for(event).name == exchange and event.event_type == event_type:
                return service.exchange.name
    return f"{exchange or 'default'}.{event_type}"


class QueueLabels(MetricsSettingsProvider[IncomingMessage, RabbitPublishCommand]):
    """Labels consumed messages by queue and published ones by exchange and event type."""

    __slots__ = ("messaging_system", "public_events_from")

    def __init__(self, public_events_from: str | None = None) -> None:
        self.messaging_system = "rabbitmq"
        self.public_events_from = public_events_from

    def get_consume_attrs_from_message(self, msg: StreamMessage[IncomingMessage]) -> ConsumeAttrs:
        raw = msg.raw_message
        return {
            "destination_name": queue_of(
                raw.exchange or "",
                raw.routing_key or "",
                public_events_from=self.public_events_from,
            ),
            "message_size": len(msg.body),
            "messages_count": 1,
        }

    def get_publish_destination_name_from_cmd(self, cmd: RabbitPublishCommand) -> str:
        return f"{cmd.exchange.name or 'default'}.{event_type_of(cmd.destination)}"


class ServiceMetrics:
    """The registry, the broker middlewares that fill it, and the `/metrics` app."""

    def __init__(self, *, public_events_from: str | None = None) -> None:
        """`public_events_from`: the queue the service takes public events off, if it has one
        of its own (`queue_of`)."""
        self.public_events_from = public_events_from
        self.registry = CollectorRegistry()
        self.dead_lettered = Counter(
            f"{PREFIX}_dead_lettered_messages_total",
            "Messages a service sent to the dead-letter exchange as never processable.",
            ["queue"],
            registry=self.registry,
        )

    def broker_middleware(self) -> PrometheusMiddleware[Any, Any]:
        """FastStream's Prometheus middleware: `mailsync_received_messages_total`,
        `mailsync_received_processed_messages_total{status}` (acked, nacked, rejected, error),
        `mailsync_received_processed_messages_duration_seconds`, `mailsync_published_...`."""
        return PrometheusMiddleware(
            settings_provider_factory=lambda _: QueueLabels(self.public_events_from),
            registry=self.registry,
            metrics_prefix=PREFIX,
        )

    def dead_letter_counter(self) -> type[BaseMiddleware]:
        """A middleware, inside `DeadLetterPermanentErrors`, that counts what it dead-letters."""
        counter = self.dead_lettered
        public_events_from = self.public_events_from

        class CountDeadLetters(BaseMiddleware):
            async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
                try:
                    return await call_next(msg)
                except (PermanentError, ValidationError):
                    raw = msg.raw_message
                    counter.labels(
                        queue_of(
                            getattr(raw, "exchange", ""),
                            getattr(raw, "routing_key", ""),
                            public_events_from=public_events_from,
                        )
                    ).inc()
                    raise

        return CountDeadLetters

    def exposition(self) -> tuple[bytes, str]:
        """The registry in Prometheus' text format, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def asgi_app(self) -> AsgiApp:
        app: AsgiApp = make_asgi_app(self.registry)
        return app


class RequestMetrics:
    """ASGI middleware timing each api request by method, route template and status."""

    def __init__(self, app: AsgiApp, registry: CollectorRegistry) -> None:
        self._app = app
        self._seconds = Histogram(
            f"{PREFIX}_http_request_duration_seconds",
            "Time to answer an api request, by method, route template and status.",
            ["method", "route", "status"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        status = 500

        async def send_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        timer = self._seconds
        started = time.perf_counter()
        try:
            await self._app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            timer.labels(scope["method"], route, str(status)).observe(time.perf_counter() - started)
