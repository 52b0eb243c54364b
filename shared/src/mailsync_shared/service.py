"""Running a worker service: an ASGI app around its broker with liveness and readiness."""

import gc
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import uvicorn
from faststream.asgi import AsgiFastStream, AsgiResponse, get
from faststream.asgi.types import Scope
from faststream.rabbit import RabbitBroker

from mailsync_shared.metrics import ServiceMetrics

ReadinessCheck = Callable[[], Awaitable[bool]]
Hook = Callable[[], Awaitable[None]]

logger = logging.getLogger(__name__)


# Allocations between passes over the youngest generation (CPython's default is 700).
YOUNG_COLLECTION_EVERY = 50_000


def collect_cycles_less_often() -> None:
    """Spend less CPU on the cyclic garbage collector in a busy request-per-message service.

    What was created until now (modules, the app) lives as long as the process, so it is moved
    out of the collector's sight (`gc.freeze`), and the youngest generation is collected every
    `YOUNG_COLLECTION_EVERY` allocations rather than 700: a message's short-lived objects are
    freed by reference counting anyway. Measured on the send benchmark: about a seventh less CPU
    in the send service.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 50, 100)


def _json(body: str, status: int) -> AsgiResponse:
    return AsgiResponse(body.encode(), status, headers={"content-type": "application/json"})


def worker_app(
    broker: RabbitBroker,
    *,
    readiness: dict[str, ReadinessCheck],
    metrics: ServiceMetrics,
    on_startup: Sequence[Hook] = (),
    after_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    after_shutdown: Sequence[Hook] = (),
    title: str,
) -> AsgiFastStream:
    """The service's broker app with `/health/live`, `/health/ready` and `/metrics` routes.

    Ready means every named check passes (broker connected, database answering, ...).
    """

    @get
    async def live(scope: Scope) -> AsgiResponse:
        return _json('{"status": "ok"}', 200)

    @get
    async def ready(scope: Scope) -> AsgiResponse:
        failing = [name for name, check in readiness.items() if not await _passes(check)]
        if failing:
            return _json(
                '{"status": "not ready", "failing": ["' + '", "'.join(failing) + '"]}', 503
            )
        return _json('{"status": "ready"}', 200)

    app = AsgiFastStream(
        broker,
        asgi_routes=[
            ("/health/live", live),
            ("/health/ready", ready),
            ("/metrics", metrics.asgi_app()),
        ],
        on_startup=list(on_startup),
        after_startup=list(after_startup),
        on_shutdown=list(on_shutdown),
        after_shutdown=list(after_shutdown),
        asyncapi_path="/asyncapi",
    )
    app.title = title  # type: ignore[attr-defined]
    return app


async def _passes(check: ReadinessCheck) -> bool:
    try:
        return await check()
    except Exception:
        logger.exception("readiness check failed")
        return False


def broker_connected(broker: RabbitBroker) -> ReadinessCheck:
    async def check() -> bool:
        return await broker.ping(timeout=2.0)

    return check


def serve(app: Any, *, host: str, port: int) -> None:
    """Run an ASGI app until SIGINT/SIGTERM, logging through the service's JSON logger."""
    collect_cycles_less_often()
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, lifespan="on")
