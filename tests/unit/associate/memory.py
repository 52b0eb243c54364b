"""In-memory stand-ins for what associate's domain classes are given: a workspace's
repository, the batches over the store, the event publisher, the send requests."""

import asyncio
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mailsync_associate.batch_logbook import Outcomes
from mailsync_associate.logbook import Dropped, Logged, Skipped
from mailsync_associate.repository import (
    GROWING_LISTS,
    RefLookup,
    grown,
    keys_of,
    thread_keys,
    with_message,
)
from mailsync_associate.threading import parent_ids, subject_key
from mailsync_shared.association.linking import Links
from mailsync_shared.contracts.envelope import Event
from mailsync_shared.contracts.mail import Address, MailMessage
from mailsync_shared.ids import stable_id
from mailsync_shared.storage.documents import (
    CompanyDocument,
    ContactDocument,
    DealDocument,
    MessageDocument,
    ThreadDocument,
    Visibility,
)

OWNER = "owner@acme.test"


def mail(
    message_id: str,
    *,
    mailbox_id: str = "mb1",
    subject: str = "Hello",
    sender: str = "ann@client.test",
    parents: Sequence[str] = (),
) -> MailMessage:
    """A received message `<message_id@client.test>` replying to `parents` (same form)."""
    parent_ids = [f"<{parent}@client.test>" for parent in parents]
    return MailMessage(
        mailbox_id=mailbox_id,
        owner_address=OWNER,
        direction="received",
        raw_id=f"raw-{message_id}",
        size=10,
        message_id=f"<{message_id}@client.test>",
        in_reply_to=parent_ids[-1:],
        references=parent_ids,
        subject=subject,
        date=datetime(2025, 3, 3, 9, tzinfo=UTC),
        from_=Address(address=sender),
        to=[Address(address=OWNER)],
    )


@dataclass
class MemoryWorkspace:
    """One workspace's store as the batches see it, and what was done to it."""

    visibility: Visibility = "workspace"
    skipped: set[str] = field(default_factory=set)
    dropped: set[str] = field(default_factory=set)
    failing: dict[str, Exception] = field(default_factory=dict)
    linked: set[str] = field(default_factory=set)
    taken_by_another_writer: set[str] = field(default_factory=set)
    stored: dict[str, MessageDocument] = field(default_factory=dict)
    announced: list[str] = field(default_factory=list)
    opened_with: list[frozenset[str]] = field(default_factory=list)
    logged: list[tuple[str, str | None]] = field(default_factory=list)


class MemoryBatch:
    """A batch over a `MemoryWorkspace`: a message is stored once, and is a copy (nothing to
    announce) when it was announced before or an earlier batch is announcing it."""

    def __init__(self, workspace_id: str, memory: MemoryWorkspace, announcing: Set[str]) -> None:
        self._workspace_id = workspace_id
        self._memory = memory
        self._announcing = announcing
        self._held: dict[str, MessageDocument] = {}
        self.loaded: list[str] = []

    async def load(self, messages: Sequence[MailMessage]) -> None:
        self.loaded = [message.message_id for message in messages]

    async def log(
        self, message: MailMessage, *, replied_thread_id: str | None = None
    ) -> Logged | Skipped | Dropped:
        memory, message_id = self._memory, message.message_id
        memory.logged.append((message_id, replied_thread_id))
        if message_id in memory.failing:
            raise memory.failing[message_id]
        if message_id in memory.dropped:
            return Dropped(message)
        if message_id in memory.skipped:
            return Skipped(message)
        thread_id = replied_thread_id or stable_id("thread", self._workspace_id, message_id)
        thread = ThreadDocument(id=thread_id, workspace_id=self._workspace_id)
        known = self._held.get(message_id) or memory.stored.get(message_id)
        if known is not None:
            copy = known.events_published or message_id in self._announcing
            if copy:
                return Logged(message, known, thread, publish=False, links_changed=False)
        stored = known or MessageDocument(
            workspace_id=self._workspace_id,
            message_id=message_id,
            thread_id=thread_id,
            mailbox_ids=[message.mailbox_id],
            direction=message.direction,
            raw_id=message.raw_id,
        )
        self._held[message_id] = stored.model_copy(update={"events_published": True})
        linked = message_id in memory.linked
        return Logged(message, stored, thread, publish=True, links_changed=linked)

    async def flush(self) -> set[str]:
        lost = set(self._held) & self._memory.taken_by_another_writer
        self._memory.stored.update(
            (message_id, document.model_copy(update={"events_published": False}))
            for message_id, document in self._held.items()
            if message_id not in lost
        )
        self._held.clear()
        return lost

    async def mailbox_visibility(self, mailbox_id: str) -> Visibility | None:
        return self._memory.visibility

    async def mark_all_published(self, message_ids: Sequence[str]) -> None:
        self._memory.announced += message_ids
        for message_id in message_ids:
            stored = self._memory.stored[message_id]
            self._memory.stored[message_id] = stored.model_copy(update={"events_published": True})


class MemoryBatches:
    def __init__(self) -> None:
        self.workspaces: dict[str, MemoryWorkspace] = {}

    def __getitem__(self, workspace_id: str) -> MemoryWorkspace:
        return self.workspaces.setdefault(workspace_id, MemoryWorkspace())

    def open(self, workspace_id: str, announcing: Set[str]) -> MemoryBatch:
        self[workspace_id].opened_with.append(frozenset(announcing))
        return MemoryBatch(workspace_id, self[workspace_id], announcing)


class Published:
    """A publisher that records each event with its level. It can hold back a workspace's
    events (`hold`, `release`; `waiting` lists those held) or refuse those of some
    `Message-ID`s (`failing`)."""

    def __init__(self) -> None:
        self.events: list[tuple[Event, Visibility | None]] = []
        self.waiting: list[Event] = []
        self.failing: set[str] = set()
        self._gates: dict[str, asyncio.Event] = {}

    def hold(self, workspace_id: str) -> None:
        self._gates[workspace_id] = asyncio.Event()

    def release(self, workspace_id: str) -> None:
        self._gates.pop(workspace_id).set()

    async def __call__(self, event: Event, *, level: Visibility | None = None) -> None:
        gate = self._gates.get(event.workspaceid)
        if gate is not None:
            self.waiting.append(event)
            await gate.wait()
        if getattr(event.data, "message_id", None) in self.failing:
            raise ConnectionError(f"broker refused {event.type}")
        self.events.append((event, level))

    async def publish_each(self, events: Sequence[tuple[Event, Visibility | None]]) -> Outcomes:
        """Each event published as `__call__` does, all at once; each one's outcome."""
        sent = await asyncio.gather(
            *(self(event, level=level) for event, level in events), return_exceptions=True
        )
        return [outcome if isinstance(outcome, BaseException) else None for outcome in sent]

    def of_type(self, event_type: str) -> list[Event]:
        return [event for event, _ in self.events if event.type == event_type]

    def message_ids(self, event_type: str = "mailsync.email.logged.v1") -> list[str]:
        return [getattr(event.data, "message_id", "") for event in self.of_type(event_type)]


class SendRequests:
    """Completes a sent message as the stored send request would: the Bcc it kept."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, str]] = []

    async def complete(
        self, workspace_id: str, message: MailMessage, request_id: str
    ) -> MailMessage:
        self.asked.append((workspace_id, message.message_id, request_id))
        return message.model_copy(update={"bcc": [Address(address="boss@acme.test")]})


class MemoryRepository:
    """One workspace's messages, threads, refs and records in memory, written the way
    `repository.AssociateRepository` writes them to the store (`logbook.LogbookRepository`)."""

    def __init__(self, workspace_id: str = "w1") -> None:
        self.workspace_id = workspace_id
        self.threads: dict[str, ThreadDocument] = {}
        self.refs: dict[tuple[str, str], set[str]] = {}
        self.messages: dict[str, MessageDocument] = {}
        self.announced: set[str] = set()
        self.raw_bytes: dict[str, bytes] = {}
        self.contacts: list[ContactDocument] = []
        self.companies: list[CompanyDocument] = []
        self.deals: list[DealDocument] = []
        self.owners: dict[str, str] = {"mb1": OWNER, "mb2": OWNER}
        self.scopes: dict[str, str] = {}
        self.stopped: set[str] = set()
        self.forgotten: list[str] = []
        self.skipped: list[str] = []
        self._lookup = RefLookup(self)

    def contact(self, name: str, address: str) -> ContactDocument:
        contact = ContactDocument(workspace_id=self.workspace_id, name=name, emails=[address])
        self.contacts.append(contact)
        return contact

    # -- threading's look-ups

    async def thread(self, thread_id: str) -> ThreadDocument | None:
        return self.threads.get(thread_id)

    async def thread_ids_for(self, keys: Iterable[tuple[str, str]]) -> set[str]:
        return {thread_id for key in keys for thread_id in self.refs.get(key, set())}

    async def threads_listing(self, message_ids: Sequence[str]) -> list[ThreadDocument]:
        return await self._lookup.threads_listing(message_ids)

    async def thread_with_provider_key(self, key: str) -> ThreadDocument | None:
        return await self._lookup.thread_with_provider_key(key)

    async def threads_with_subject(
        self, key: str, around: datetime, window: timedelta
    ) -> list[ThreadDocument]:
        return await self._lookup.threads_with_subject(key, around, window)

    # -- mailboxes and records

    async def mailbox_stopped(self, mailbox_id: str) -> bool:
        return mailbox_id in self.stopped

    async def mailbox_scope(self, mailbox_id: str) -> str:
        return self.scopes.get(mailbox_id, "all")

    async def mailbox_addresses(self, mailbox_ids: Sequence[str]) -> list[str]:
        return [self.owners[m] for m in mailbox_ids if m in self.owners]

    async def records_for(
        self, addresses: Sequence[str]
    ) -> tuple[list[ContactDocument], list[CompanyDocument], list[DealDocument]]:
        return self.contacts, self.companies, self.deals

    async def forget(self, message: MailMessage) -> None:
        self.forgotten.append(message.message_id)
        self.raw_bytes.pop(message.raw_id, None)

    async def record_skipped(self, message: MailMessage) -> None:
        self.skipped.append(message.message_id)
        await self.forget(message)

    # -- messages

    async def message(self, message_id: str) -> MessageDocument | None:
        stored = self.messages.get(message_id)
        if stored is None:
            return None
        return stored.model_copy(update={"events_published": message_id in self.announced})

    async def raw(self, raw_id: str) -> bytes | None:
        return self.raw_bytes.get(raw_id)

    async def insert_message(self, message: MessageDocument) -> bool:
        if message.message_id in self.messages:
            return False
        self.messages[message.message_id] = message
        return True

    async def add_copy(self, stored: MessageDocument, message: MailMessage) -> None:
        current = self.messages[stored.message_id]
        sources = [*current.sources, *([message.source] if message.source else [])]
        self.messages[stored.message_id] = current.model_copy(
            update={
                "mailbox_ids": list(dict.fromkeys([*current.mailbox_ids, message.mailbox_id])),
                "sources": sources,
            }
        )

    # -- threads

    async def add_refs(self, thread_id: str, keys: Iterable[tuple[str, str]]) -> None:
        for key in keys:
            self.refs.setdefault(key, set()).add(thread_id)

    async def open_thread(self, thread_id: str, message: MailMessage) -> None:
        thread = self.threads.get(thread_id) or ThreadDocument(
            id=thread_id,
            workspace_id=self.workspace_id,
            subject=message.subject,
            subject_key=subject_key(message.subject),
        )
        self.threads[thread_id] = grown(
            thread, message_ids=[message.message_id, *parent_ids(message)]
        )
        await self.add_refs(thread_id, thread_keys(message))

    async def merge_thread(self, source_id: str, into: str) -> None:
        source = self.threads.pop(source_id, None)
        if source is None:
            return
        target = self.threads[into]
        joined = grown(target, **{name: getattr(source, name) for name in GROWING_LISTS})
        if not target.manually_linked:
            joined = joined.model_copy(
                update={
                    name: list(dict.fromkeys([*getattr(target, name), *getattr(source, name)]))
                    for name in ("contact_ids", "company_ids", "deal_ids")
                }
            )
        self.threads[into] = joined
        for message_id, stored in self.messages.items():
            if stored.thread_id == source_id:
                self.messages[message_id] = stored.model_copy(update={"thread_id": into})
        await self.add_refs(into, keys_of(source))

    async def add_message_to_thread(
        self, thread_id: str, message: MailMessage, at: datetime
    ) -> ThreadDocument:
        self.threads[thread_id] = with_message(self.threads[thread_id], message, at)
        return self.threads[thread_id]

    async def add_mailbox_to_thread(self, thread_id: str, mailbox_id: str) -> None:
        self.threads[thread_id] = grown(self.threads[thread_id], mailbox_ids=[mailbox_id])

    async def set_links(self, thread_id: str, links: Links) -> ThreadDocument:
        thread = self.threads[thread_id]
        if not thread.manually_linked:
            thread = thread.model_copy(
                update={
                    "contact_ids": list(links.contact_ids),
                    "company_ids": list(links.company_ids),
                    "deal_ids": list(links.deal_ids),
                    "link_reasons": list(links.reasons),
                }
            )
            self.threads[thread_id] = thread
        return thread
