"""The api's app factory: plain FastAPI owning its broker and database client."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI, Response
from faststream.rabbit import RabbitBroker
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

from mailsync_api.body_limits import BodyLimitMiddleware
from mailsync_api.console.pages import install_console
from mailsync_api.context import ApiContext
from mailsync_api.problems import document_problems, install_problem_handlers
from mailsync_api.request_context import RequestIdMiddleware
from mailsync_api.routes import (
    api_keys,
    associations,
    attachments,
    capture_rules,
    companies,
    contacts,
    deals,
    exports,
    health,
    imports,
    mailbox_aliases,
    mailboxes,
    messages,
    outbound,
    send_requests,
    threads,
    users,
    webhooks,
    workspaces,
)
from mailsync_api.routes.events import events_router, public_events_document
from mailsync_api.settings import Settings
from mailsync_shared.contracts.mailboxes import MailboxClaimable
from mailsync_shared.contracts.outbound import SendRequested
from mailsync_shared.contracts.records import ContactCaptured, ThreadAssociated
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.metrics import RequestMetrics, ServiceMetrics
from mailsync_shared.storage.client import connect, database
from mailsync_shared.storage.indexes import ensure_indexes
from mailsync_shared.storage.kept_mailboxes import KeptMailboxes
from mailsync_shared.topology import declare_topology
from mailsync_shared.tracing import broker_tracing, traces_recorded

logger = logging.getLogger(__name__)

API_VERSION = version("mailsync-api")


def create_app(settings: Settings) -> FastAPI:
    """Wire settings, broker, storage and routers; connections open in the lifespan."""
    metrics = ServiceMetrics()
    broker = RabbitBroker(
        settings.rabbitmq_url,
        logger=logger,
        middlewares=[broker_tracing(), metrics.broker_middleware()],
    )
    client = connect(settings)
    context = ApiContext(
        settings=settings,
        broker=broker,
        publisher=EventPublisher(
            broker, [SendRequested, ContactCaptured, ThreadAssociated, MailboxClaimable]
        ),
        client=client,
        db=database(client, settings),
        cipher=CredentialCipher(settings.secret_key),
        mailboxes=KeptMailboxes(settings.mailbox_cache_seconds),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await broker.start()
        await declare_topology(broker)
        await ensure_indexes(context.db)
        logger.info("api started")
        try:
            yield
        finally:
            await broker.stop()
            await client.close()

    app = FastAPI(
        title="Mailsync API",
        version=API_VERSION,
        description=(
            "Email sync for CRMs: connect mailboxes, keep records, read timelines, reply from "
            "the user's own address. Authenticate with `Authorization: Bearer <key>`: a person's "
            "personal token (acting with their role) or a system's API key (acting with its "
            "scopes); `docs/permissions.md` lists what each route needs."
        ),
        lifespan=lifespan,
    )
    app.state.context = context
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_request_bytes,
        by_prefix=[
            ("/v1/imports/", settings.max_import_bytes),
            ("/v1/attachments", settings.max_attachments_bytes),
        ],
    )
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(RequestMetrics, registry=metrics.registry)
    install_problem_handlers(app)
    if traces_recorded():  # with no spans recorded, its middleware costs CPU for nothing
        FastAPIInstrumentor.instrument_app(app, excluded_urls="/health/.*,/metrics")
    for router in (
        health.router,
        workspaces.router,
        users.router,
        api_keys.router,
        contacts.router,
        companies.router,
        deals.router,
        imports.router,
        exports.router,
        mailboxes.router,
        threads.router,
        messages.router,
        associations.router,
        capture_rules.router,
        send_requests.router,
        attachments.router,
        outbound.router,
        mailbox_aliases.router,
        webhooks.router,
    ):
        app.include_router(router)
    app.include_router(events_router(public_events_document(settings.rabbitmq_url, API_VERSION)))
    install_console(app)

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
