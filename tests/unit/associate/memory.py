"""In-memory stand-ins for what associate's domain classes are given: the workspace batches
over the store, the event publisher, the send requests."""

import asyncio
from collections.abc import Sequence, Set
from dataclasses import dataclass, field

from mailsync_associate.logbook import Dropped, Logged, Skipped
from mailsync_shared.contracts.envelope import Event
from mailsync_shared.contracts.mail import Address, MailMessage
from mailsync_shared.ids import stable_id
from mailsync_shared.storage.documents import MessageDocument, ThreadDocument, Visibility

OWNER = "owner@acme.test"


def mail(message_id: str, *, mailbox_id: str = "mb1", subject: str = "Hello") -> MailMessage:
    return MailMessage(
        mailbox_id=mailbox_id,
        owner_address=OWNER,
        direction="received",
        raw_id=f"raw-{message_id}",
        size=10,
        message_id=f"<{message_id}@client.test>",
        subject=subject,
        from_=Address(address="ann@client.test"),
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
