"""Reading threads and record timelines with their messages, as the caller may see them."""

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailsync_api.pagination import Page, PageParams, paginate
from mailsync_api.problems import not_found
from mailsync_api.schemas.threads import MessageOut, ThreadOut
from mailsync_api.visible_mail import MailView, mail_view, require, visible_only
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
    """The thread as the viewer may see it, made of its messages visible to them, each at its
    own mailboxes' level; None when they may see none of its messages."""
    seen = view.thread_as_seen(thread, messages)
    if seen is None:
        return None
    as_seen, level = seen
    shown = redact_message(ThreadOut.of(as_seen, []).model_dump(by_alias=True), level)
    if shown is None:
        return None
    shown["messages"] = []
    for message in messages:
        row = MessageOut.of(message).model_dump(by_alias=True)
        redacted = redact_message(row, view.of_message(message, thread))
        if redacted is not None:
            shown["messages"].append(redacted)
    return ThreadOut.model_validate(shown)


async def messages_by_thread(
    store: WorkspaceStore, thread_ids: Sequence[str]
) -> dict[str, list[MessageDocument]]:
    """The messages of these threads, oldest first, in one query."""
    by_thread: dict[str, list[MessageDocument]] = defaultdict(list)
    if thread_ids:
        for document in await store.messages.find({"thread_id": {"$in": list(thread_ids)}}):
            message = MessageDocument.from_document(document)
            by_thread[message.thread_id].append(message)
    return {thread_id: oldest_first(found) for thread_id, found in by_thread.items()}


async def threads_as_seen(
    store: WorkspaceStore, view: MailView, threads: Sequence[ThreadDocument]
) -> dict[str, ThreadDocument]:
    """Each thread as the viewer sees it, by id; those they may not see are left out."""
    by_thread = await messages_by_thread(store, [thread.id for thread in threads])
    shown = {}
    for thread in threads:
        seen = view.thread_as_seen(thread, by_thread.get(thread.id, []))
        if seen is not None:
            shown[thread.id] = seen[0]
    return shown


async def render_threads(
    store: WorkspaceStore, view: MailView, documents: Sequence[Document]
) -> list[ThreadOut]:
    """Threads with their messages, fetched in one query for the whole page, redacted."""
    threads = [ThreadDocument.from_document(document) for document in documents]
    by_thread = await messages_by_thread(store, [thread.id for thread in threads])
    rendered = []
    for thread in threads:
        shown = redacted_thread(view, thread, by_thread.get(thread.id, []))
        if shown is not None:
            rendered.append(shown)
    return rendered


async def load_thread(store: WorkspaceStore, thread_id: str) -> ThreadDocument:
    document = await store.threads.find_one({"_id": thread_id})
    if document is None:
        raise not_found("thread")
    return ThreadDocument.from_document(document)


@dataclass(frozen=True)
class ThreadInView:
    """A thread a viewer may see, its messages (all of them, oldest first) and their view."""

    thread: ThreadDocument
    messages: list[MessageDocument]
    view: MailView
    level: Access

    def in_full(self) -> list[MessageDocument]:
        """The messages the viewer may read whole, oldest first."""
        return self.view.in_full(self.thread, self.messages)

    def as_seen(self) -> ThreadDocument:
        """The thread as its messages visible to the viewer make it."""
        seen = self.view.thread_as_seen(self.thread, self.messages)
        if seen is None:  # thread_in_view() refused it already
            raise not_found("thread")
        return seen[0]

    def visible_message_ids(self) -> set[str]:
        return {
            m.id for m in self.messages if self.view.of_message(m, self.thread) > Access.NOTHING
        }


async def thread_in_view(
    store: WorkspaceStore, viewer: Viewer, thread_id: str, needs: Access = Access.METADATA
) -> ThreadInView:
    """The thread, when `viewer` may see at least `needs` of one of its messages: a 404 when
    they may see none (for them it does not exist), a 403 below `needs`."""
    thread = await load_thread(store, thread_id)
    view = await mail_view(store, viewer)
    messages = await thread_messages(store, thread.id)
    seen = view.thread_as_seen(thread, messages)
    level = require(Access.NOTHING if seen is None else seen[1], needs)
    return ThreadInView(thread, messages, view, level)


async def visible_thread(
    store: WorkspaceStore, viewer: Viewer, thread_id: str, needs: Access = Access.METADATA
) -> ThreadDocument:
    """The thread, when `viewer` may see at least `needs` of it (404 for nothing, else 403)."""
    return (await thread_in_view(store, viewer, thread_id, needs)).thread


async def read_thread(store: WorkspaceStore, viewer: Viewer, thread_id: str) -> ThreadOut:
    """One thread with its messages, as much of it as `viewer` may see."""
    found = await thread_in_view(store, viewer, thread_id)
    shown = redacted_thread(found.view, found.thread, found.messages)
    if shown is None:  # thread_in_view() has refused this already
        raise not_found("thread")
    return shown


@dataclass(frozen=True)
class ThreadSearch:
    """Threads by participant address, words of the subject and the date of the last message,
    each matched against the thread as the viewer sees it (`seen_thread`): an address, a
    subject or a date known only from messages hidden from them finds nothing.

    Every value is used as data: the subject through an escaped pattern, never as an operator.
    """

    unassigned: bool = False
    participant: str | None = None
    subject: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @property
    def needs_messages(self) -> bool:
        """Whether matching needs the thread as seen (anything but `unassigned`)."""
        return any(v is not None for v in (self.participant, self.subject, self.since, self.until))

    def stored_filter(self) -> dict[str, Any]:
        """What the stored threads must hold for the search to match any view of them."""
        filter_: dict[str, Any] = dict(UNASSIGNED) if self.unassigned else {}
        if self.participant is not None:
            filter_["participants"] = self.participant.lower()
        if self.since is not None:
            filter_["last_message_at"] = {"$gte": self.since}
        if self.until is not None:
            filter_["first_message_at"] = {"$lt": self.until}
        return filter_

    def message_filter(self) -> dict[str, Any]:
        """What one of the thread's messages must hold (the seen subject is a message's)."""
        if self.subject is None:
            return {}
        return {"subject": {"$regex": re.escape(self.subject), "$options": "i"}}

    def matches(self, thread: ThreadDocument) -> bool:
        """Whether the thread, as the viewer sees it, matches."""
        if self.participant is not None and self.participant.lower() not in thread.participants:
            return False
        if self.subject is not None and self.subject.casefold() not in thread.subject.casefold():
            return False
        last = thread.last_message_at
        if self.since is not None and (last is None or last < self.since):
            return False
        return self.until is None or (last is not None and last < self.until)


async def _matching_ids(
    store: WorkspaceStore, view: MailView, search: ThreadSearch, candidates: Mapping[str, Any]
) -> list[str]:
    """Ids of the candidate threads that match `search` as the viewer sees them."""
    wanted = search.message_filter()
    if wanted:
        found = await store.messages.find(wanted, projection={"thread_id": 1})
        in_messages = sorted({str(document["thread_id"]) for document in found})
        candidates = {"$and": [dict(candidates), {"_id": {"$in": in_messages}}]}
    threads = [ThreadDocument.from_document(d) for d in await store.threads.find(candidates)]
    by_thread = await messages_by_thread(store, [thread.id for thread in threads])
    matched = []
    for thread in threads:
        seen = view.thread_as_seen(thread, by_thread.get(thread.id, []))
        if seen is not None and search.matches(seen[0]):
            matched.append(thread.id)
    return matched


async def thread_page(
    store: WorkspaceStore,
    viewer: Viewer,
    filter_: Mapping[str, Any],
    params: PageParams,
    search: ThreadSearch | None = None,
) -> Page[ThreadOut]:
    """Threads matching `filter_` (and `search`) that `viewer` may see, most recent first."""
    view = await mail_view(store, viewer)
    query = await visible_only(
        store, viewer, {**filter_, **(search.stored_filter() if search else {})}
    )
    if search is not None and search.needs_messages:
        query = {"_id": {"$in": await _matching_ids(store, view, search, query)}}

    async def render(documents: Sequence[Document]) -> list[ThreadOut]:
        return await render_threads(store, view, documents)

    return await paginate(store.threads, query, params, sort_field="last_message_at", render=render)
