"""Finding logged messages by their `Message-ID` or id, as the caller may see them."""

from collections.abc import Mapping
from typing import Any

from mailsync_api.problems import not_found
from mailsync_api.schemas.messages import LoggedMessageOut
from mailsync_api.schemas.threads import MessageOut
from mailsync_api.visible_mail import MailView, mail_view
from mailsync_shared.storage.documents import MessageDocument, ThreadDocument
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.visibility import Viewer, redact_message


def bracketed(message_id: str) -> str:
    """`Message-ID` as stored, with angle brackets, whether or not the caller gave them."""
    value = message_id.strip()
    return value if value.startswith("<") else f"<{value}>"


async def _shown(
    store: WorkspaceStore, view: MailView, document: Mapping[str, Any]
) -> LoggedMessageOut | None:
    """The message at the level its mailboxes and its thread's privacy give; None for nothing."""
    message = MessageDocument.from_document(dict(document))
    found = await store.threads.find_one({"_id": message.thread_id})
    if found is None:
        return None
    thread = ThreadDocument.from_document(found)
    row = MessageOut.of(message).model_dump(by_alias=True)
    redacted = redact_message(row, view.of_message(message, thread))
    if redacted is None:
        return None
    return LoggedMessageOut.model_validate({**redacted, "thread_id": thread.id})


async def find_by_message_id(
    store: WorkspaceStore, viewer: Viewer, message_id: str
) -> list[LoggedMessageOut]:
    """The logged message with this `Message-ID` (one per workspace), when visible."""
    document = await store.messages.find_one({"message_id": bracketed(message_id)})
    if document is None:
        return []
    shown = await _shown(store, await mail_view(store, viewer), document)
    return [] if shown is None else [shown]


async def read_message(store: WorkspaceStore, viewer: Viewer, id_: str) -> LoggedMessageOut:
    """One message by its id; 404 when it does not exist or the caller may see nothing of it."""
    document = await store.messages.find_one({"_id": id_})
    shown = (
        None if document is None else await _shown(store, await mail_view(store, viewer), document)
    )
    if shown is None:
        raise not_found("message")
    return shown
