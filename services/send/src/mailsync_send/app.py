"""The send service: consumes send requests, relays them, publishes what happened; delivers
the public events to the workspaces' HTTP webhooks."""

from datetime import timedelta

from faststream.asgi import AsgiFastStream

from mailsync_send.handlers import SendHandlers, send_router
from mailsync_send.scheduler import Scheduler
from mailsync_send.send_metrics import SendMetrics
from mailsync_send.sender import Sender
from mailsync_send.settings import Settings
from mailsync_send.webhooks.dispatcher import WebhookDispatcher
from mailsync_send.webhooks.metrics import WebhookMetrics
from mailsync_send.webhooks.poster import WebhookPoster
from mailsync_send.webhooks.recorder import WebhookRecorder
from mailsync_shared.contracts.outbound import EmailSendFailed, EmailSent, SendRequested
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.service import worker_app
from mailsync_shared.topology import WEBHOOK_EVENTS_QUEUE
from mailsync_shared.webhooks.bindings import WebhookBindings
from mailsync_shared.worker_wiring import WorkerWiring


def create_app(settings: Settings) -> AsgiFastStream:
    wiring = WorkerWiring.from_settings(
        settings, prefetch=settings.prefetch, public_events_from=WEBHOOK_EVENTS_QUEUE.name
    )
    publisher = EventPublisher(wiring.broker, [EmailSent, EmailSendFailed, SendRequested])
    cipher = CredentialCipher(settings.secret_key)
    sender = Sender(wiring.db, publisher, cipher, settings, SendMetrics(wiring.metrics.registry))
    poster = WebhookPoster(
        HostGuard(allow_private=settings.allow_private_hosts),
        timeout=settings.webhook_timeout_seconds,
    )
    dispatcher = WebhookDispatcher(
        wiring.db,
        cipher,
        poster,
        settings,
        WebhookMetrics(wiring.metrics.registry),
        WebhookBindings(wiring.broker, wiring.db),
    )
    recorder = WebhookRecorder(
        wiring.db,
        cache_seconds=settings.webhook_subscriptions_cache_seconds,
        recorded=dispatcher.wake,
    )
    wiring.broker.include_router(send_router(SendHandlers(sender, recorder)))
    scheduler = Scheduler(
        wiring.db,
        publisher,
        interval=settings.scheduler_interval_seconds,
        redispatch_after=timedelta(seconds=settings.redispatch_after_seconds),
        claim_timeout=timedelta(seconds=settings.claim_timeout_seconds),
    )

    return worker_app(
        wiring.broker,
        metrics=wiring.metrics,
        readiness=wiring.readiness(),
        on_startup=[wiring.prepare],
        after_startup=[scheduler.start, dispatcher.start],
        on_shutdown=[scheduler.stop, dispatcher.stop],
        after_shutdown=[sender.close, wiring.close_database],
        title="Mailsync send",
    )
