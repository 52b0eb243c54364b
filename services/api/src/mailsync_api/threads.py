"""Reading threads with their messages, and the timelines of records."""

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from mailsync_api.pagination import Page, PageParams, paginate
from mailsync_api.problems import not_found
from mailsync_api.schemas.threads import ThreadOut
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MessageDocument, ThreadDocument
from mailsync_shared.storage.scoped import WorkspaceStore

_EARLIEST = datetime.min.replace(tzinfo=UTC)

UNASSIGNED: Mapping[str, Any] = {"contact_ids": [], "company_ids": [], "deal_ids": []}


def oldest_first(messages: Sequence[MessageDocument]) -> list[MessageDocument]:
    """Messages in the order they were written; undated ones by when they were logged."""
    return sorted(messages, key=lambda message: message.date or message.logged_at or _EARLIEST)


async def thread_messages(store: WorkspaceStore, thread_id: str) -> list[MessageDocument]:
    documents = await store.messages.find({"thread_id": thread_id})
    return oldest_first([MessageDocument.from_document(document) for document in documents])


async def render_threads(store: WorkspaceStore, documents: Sequence[Document]) -> list[ThreadOut]:
    """Threads with their messages, fetched in one query for the whole page."""
    threads = [ThreadDocument.from_document(document) for document in documents]
    if not threads:
        return []
    by_thread: dict[str, list[MessageDocument]] = defaultdict(list)
    for document in await store.messages.find(
        {"thread_id": {"$in": [thread.id for thread in threads]}}
    ):
        message = MessageDocument.from_document(document)
        by_thread[message.thread_id].append(message)
    return [ThreadOut.of(thread, oldest_first(by_thread[thread.id])) for thread in threads]


async def load_thread(store: WorkspaceStore, thread_id: str) -> ThreadDocument:
    document = await store.threads.find_one({"_id": thread_id})
    if document is None:
        raise not_found("thread")
    return ThreadDocument.from_document(document)


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
    store: WorkspaceStore, filter_: Mapping[str, Any], params: PageParams
) -> Page[ThreadOut]:
    """Threads matching `filter_`, most recent message first."""

    async def render(documents: Sequence[Document]) -> list[ThreadOut]:
        return await render_threads(store, documents)

    return await paginate(
        store.threads, filter_, params, sort_field="last_message_at", render=render
    )
