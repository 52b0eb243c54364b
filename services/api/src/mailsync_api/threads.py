"""Reading threads and record timelines with their messages, as the caller may see them."""

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from mailsync_api.pagination import Page, PageParams, paginate
from mailsync_api.problems import not_found
from mailsync_api.schemas.threads import MessageOut, ThreadOut
from mailsync_api.visible_mail import MailView, mail_view, visible_only
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MessageDocument, ThreadDocument
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.visibility import Access, Viewer, redact_message

_EARLIEST = datetime.min.replace(tzinfo=UTC)

UNASSIGNED: Mapping[str, Any] = {"contact_ids": [], "company_ids": [], "deal_ids": []}


def oldest_first(messages: Sequence[MessageDocument]) -> list[MessageDocument]:
    """Messages in the order they were written; undated ones by when they were logged."""
    return sorted(messages, key=lambda message: message.date or message.logged_at or _EARLIEST)


async def thread_messages(store: WorkspaceStore, thread_id: str) -> list[MessageDocument]:
    documents = await store.messages.find({"thread_id": thread_id})
    return oldest_first([MessageDocument.from_document(document) for document in documents])


def redacted_thread(
    view: MailView, thread: ThreadDocument, messages: Sequence[MessageDocument]
) -> ThreadOut | None:
    """The thread as the viewer may see it, each message at its own mailboxes' level.

    None when the viewer may see nothing of it; a message they may not see is left out.
    """
    level = view.of_thread(thread)
    shown = redact_message(ThreadOut.of(thread, []).model_dump(by_alias=True), level)
    if shown is None:
        return None
    shown["messages"] = []
    for message in messages:
        row = MessageOut.of(message).model_dump(by_alias=True)
        redacted = redact_message(row, view.of_message(message, thread))
        if redacted is not None:
            shown["messages"].append(redacted)
    return ThreadOut.model_validate(shown)


async def render_threads(
    store: WorkspaceStore, view: MailView, documents: Sequence[Document]
) -> list[ThreadOut]:
    """Threads with their messages, fetched in one query for the whole page, redacted."""
    threads = [ThreadDocument.from_document(document) for document in documents]
    if not threads:
        return []
    by_thread: dict[str, list[MessageDocument]] = defaultdict(list)
    for document in await store.messages.find(
        {"thread_id": {"$in": [thread.id for thread in threads]}}
    ):
        message = MessageDocument.from_document(document)
        by_thread[message.thread_id].append(message)
    rendered = []
    for thread in threads:
        shown = redacted_thread(view, thread, oldest_first(by_thread[thread.id]))
        if shown is not None:
            rendered.append(shown)
    return rendered


async def load_thread(store: WorkspaceStore, thread_id: str) -> ThreadDocument:
    document = await store.threads.find_one({"_id": thread_id})
    if document is None:
        raise not_found("thread")
    return ThreadDocument.from_document(document)


async def visible_thread(
    store: WorkspaceStore, viewer: Viewer, thread_id: str, needs: Access = Access.METADATA
) -> ThreadDocument:
    """The thread, when `viewer` may see at least `needs` of it (404 for nothing, else 403)."""
    thread = await load_thread(store, thread_id)
    (await mail_view(store, viewer)).require(thread, needs)
    return thread


async def read_thread(store: WorkspaceStore, viewer: Viewer, thread_id: str) -> ThreadOut:
    """One thread with its messages, as much of it as `viewer` may see."""
    thread = await load_thread(store, thread_id)
    view = await mail_view(store, viewer)
    view.require(thread)
    shown = redacted_thread(view, thread, await thread_messages(store, thread.id))
    if shown is None:  # require() has refused this already
        raise not_found("thread")
    return shown


def search_filter(
    *,
    unassigned: bool,
    participant: str | None,
    subject: str | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    """Threads by participant address, words of the subject and the date of the last message.

    Every value is used as data: the subject through an escaped pattern, never as an operator.
    """
    filter_: dict[str, Any] = dict(UNASSIGNED) if unassigned else {}
    if participant is not None:
        filter_["participants"] = participant.lower()
    if subject is not None:
        filter_["subject"] = {"$regex": re.escape(subject), "$options": "i"}
    window: dict[str, datetime] = {}
    if since is not None:
        window["$gte"] = since
    if until is not None:
        window["$lt"] = until
    if window:
        filter_["last_message_at"] = window
    return filter_


async def thread_page(
    store: WorkspaceStore,
    viewer: Viewer,
    filter_: Mapping[str, Any],
    params: PageParams,
    least: Access = Access.METADATA,
) -> Page[ThreadOut]:
    """Threads matching `filter_` that `viewer` may see at `least`, most recent message first.

    A filter on the subject needs `least` SUBJECT, or matching it would reveal a hidden subject.
    """
    view = await mail_view(store, viewer)

    async def render(documents: Sequence[Document]) -> list[ThreadOut]:
        return await render_threads(store, view, documents)

    return await paginate(
        store.threads,
        await visible_only(store, viewer, filter_, least),
        params,
        sort_field="last_message_at",
        render=render,
    )
