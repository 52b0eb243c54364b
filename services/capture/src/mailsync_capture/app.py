"""The capture service: consumes fetched messages, creates contacts, publishes captured ones."""

from functools import partial

from faststream.asgi import AsgiFastStream

from mailsync_capture.handlers import register_handlers
from mailsync_capture.settings import Settings
from mailsync_shared.contracts.mail import MessageCaptured, MessageFetched
from mailsync_shared.contracts.records import ContactCaptured
from mailsync_shared.outbox_service import outbox_worker_app


def create_app(settings: Settings) -> AsgiFastStream:
    return outbox_worker_app(
        settings,
        title="Mailsync capture",
        events=[MessageCaptured, ContactCaptured, MessageFetched],
        outbox_collection="contacts",
        register_handlers=partial(register_handlers, batch_size=settings.batch_size),
    )
