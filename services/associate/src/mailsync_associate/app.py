"""The associate service: logs captured and sent messages on threads linked to records."""

from functools import partial

from faststream.asgi import AsgiFastStream

from mailsync_associate.handlers import register_handlers
from mailsync_associate.settings import Settings
from mailsync_shared.contracts.mail import MessageCaptured
from mailsync_shared.contracts.records import EmailLogged, ThreadAssociated
from mailsync_shared.outbox_service import outbox_worker_app


def create_app(settings: Settings) -> AsgiFastStream:
    return outbox_worker_app(
        settings,
        title="Mailsync associate",
        events=[EmailLogged, ThreadAssociated, MessageCaptured],
        outbox_collection="threads",
        register_handlers=partial(register_handlers, batch_size=settings.batch_size),
    )
