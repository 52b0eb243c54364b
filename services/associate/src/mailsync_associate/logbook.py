"""Logging a message on its thread: one stored message per `Message-ID`, threaded and linked.

Order of work for a message seen for the first time: the thread is opened (listing the
message's ids), threads the message proves to be one are merged, the message is inserted,
the thread gains the message and its links; the caller then publishes the events and
records the message as announced (a marker in `announced_messages`). A crash anywhere in
between leaves a message that a redelivery finishes: found by its `Message-ID` but unannounced,
it is added to its thread again (a no-op when already done) and its events are published
with the same ids as before, so consumers can drop a duplicate.

A message already logged and published (a redelivery, or another copy such as the Sent
folder copy of a message sent through Mailsync) only gains the copy's mailbox and source.

A new message seen in a client-only mailbox whose thread and participants match no record
is not stored at all, only counted (`mailsync_shared.association.scope`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from mailsync_associate.body import body_text
from mailsync_associate.threading import (
    ThreadChoice,
    ThreadLookup,
    ThreadRule,
    aware,
    choose_thread,
)
from mailsync_shared.association.automated import automated_reason
from mailsync_shared.association.linking import Links, counterpart_addresses, link_records
from mailsync_shared.association.records import thread_links
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.mail import MailMessage
from mailsync_shared.ids import stable_id
from mailsync_shared.storage.documents import (
    CompanyDocument,
    ContactDocument,
    DealDocument,
    MessageDocument,
    ThreadDocument,
)


class LogbookRepository(ThreadLookup, Protocol):
    """The reads and writes of one workspace that logging a message makes: straight to the
    store (`repository.AssociateRepository`) or through a batch (`batch.BatchRepository`)."""

    @property
    def workspace_id(self) -> str: ...

    async def mailbox_stopped(self, mailbox_id: str) -> bool: ...

    async def mailbox_scope(self, mailbox_id: str) -> str: ...

    async def mailbox_addresses(self, mailbox_ids: Sequence[str]) -> list[str]: ...

    async def records_for(
        self, addresses: Sequence[str]
    ) -> tuple[list[ContactDocument], list[CompanyDocument], list[DealDocument]]: ...

    async def forget(self, message: MailMessage) -> None: ...

    async def record_skipped(self, message: MailMessage) -> None: ...

    async def message(self, message_id: str) -> MessageDocument | None: ...

    async def raw(self, raw_id: str) -> bytes | None: ...

    async def insert_message(self, message: MessageDocument) -> bool: ...

    async def add_copy(self, stored: MessageDocument, message: MailMessage) -> None: ...

    async def open_thread(self, thread_id: str, message: MailMessage) -> None: ...

    async def merge_thread(self, source_id: str, into: str) -> None: ...

    async def add_message_to_thread(
        self, thread_id: str, message: MailMessage, at: datetime
    ) -> ThreadDocument: ...

    async def add_mailbox_to_thread(self, thread_id: str, mailbox_id: str) -> None: ...

    async def set_links(self, thread_id: str, links: Links) -> ThreadDocument: ...


@dataclass(frozen=True)
class Skipped:
    """A client-only mailbox's message that matched no record: counted, not stored."""

    message: MailMessage


@dataclass(frozen=True)
class Dropped:
    """A message of a mailbox disconnected or erased since it was fetched: not logged, and
    what was kept of it deleted."""

    message: MailMessage


@dataclass(frozen=True)
class Logged:
    """What logging a message did; `publish` says whether its events are still due."""

    message: MailMessage
    stored: MessageDocument
    thread: ThreadDocument
    publish: bool
    links_changed: bool
    rule: ThreadRule | None = None


def message_moment(message: MailMessage) -> datetime:
    """When the message happened, for ordering: its `Date`, else now."""
    return aware(message.date) if message.date is not None else utcnow()


async def log_message(
    repository: LogbookRepository,
    message: MailMessage,
    *,
    replied_thread_id: str | None = None,
) -> Logged | Skipped | Dropped:
    """Store the message (or one more copy of it), thread it and link the thread."""
    if await repository.mailbox_stopped(message.mailbox_id):
        await repository.forget(message)
        return Dropped(message)
    stored = await repository.message(message.message_id)
    if stored is None:
        choice = await choose_thread(message, repository, replied_thread_id=replied_thread_id)
        if await _outside_scope(repository, message, choice):
            await repository.record_skipped(message)
            return Skipped(message)
        thread_id = choice.thread_id or stable_id(
            "thread", repository.workspace_id, message.message_id
        )
        before = await repository.thread(thread_id)
        await repository.open_thread(thread_id, message)
        for merged in choice.merge:
            await repository.merge_thread(merged, into=thread_id)
        candidate = await _new_document(repository, message, thread_id)
        if await repository.insert_message(candidate):
            return await _finish(repository, message, candidate, before, choice.rule)
        stored = await repository.message(message.message_id)
        if stored is None:
            raise LookupError(f"message {message.message_id} was neither inserted nor found")

    await repository.add_copy(stored, message)
    if stored.events_published:
        await repository.add_mailbox_to_thread(stored.thread_id, message.mailbox_id)
        thread = await repository.thread(stored.thread_id)
        if thread is None:
            raise LookupError(f"thread {stored.thread_id} of a logged message is missing")
        return Logged(message, stored, thread, publish=False, links_changed=False)
    return await _finish(repository, message, stored, None, None)


async def _outside_scope(
    repository: LogbookRepository, message: MailMessage, choice: ThreadChoice
) -> bool:
    """True for a client-only mailbox's message that no record matches."""
    if message.send_request_id is not None:
        return False
    if await repository.mailbox_scope(message.mailbox_id) != "client_only":
        return False
    participants = [p.address for p in message.participants()]
    owners = [message.owner_address]
    for thread_id in [*([choice.thread_id] if choice.thread_id else []), *choice.merge]:
        thread = await repository.thread(thread_id)
        if thread is None:
            continue
        if thread.contact_ids or thread.company_ids or thread.deal_ids:
            return False
        participants += thread.participants
        owners += await repository.mailbox_addresses(thread.mailbox_ids)
    addresses = counterpart_addresses(participants, owners)
    contacts, companies, deals = await repository.records_for(addresses)
    links = link_records(addresses, contacts, companies, deals, automated=automated_reason(message))
    return not (links.contact_ids or links.company_ids or links.deal_ids)


async def _new_document(
    repository: LogbookRepository, message: MailMessage, thread_id: str
) -> MessageDocument:
    raw = await repository.raw(message.raw_id)
    return MessageDocument(
        id=stable_id("message", repository.workspace_id, message.message_id),
        workspace_id=repository.workspace_id,
        message_id=message.message_id,
        thread_id=thread_id,
        mailbox_ids=[message.mailbox_id],
        sources=[message.source] if message.source is not None else [],
        direction=message.direction,
        from_=message.from_,
        to=list(message.to),
        cc=list(message.cc),
        bcc=list(message.bcc),
        owner_address=message.owner_address.lower(),
        automation=message.automation,
        subject=message.subject,
        date=message.date,
        body_text=body_text(raw) if raw is not None else "",
        in_reply_to=list(message.in_reply_to),
        references=list(message.references),
        raw_id=message.raw_id,
        send_request_id=message.send_request_id,
        defects=list(message.defects),
        events_published=False,
    )


async def _finish(
    repository: LogbookRepository,
    message: MailMessage,
    stored: MessageDocument,
    before: ThreadDocument | None,
    rule: ThreadRule | None,
) -> Logged:
    """Add the message to its thread and grow the thread's links (unless set by hand).

    `before` is the thread as it was before this message; None when finishing a message
    whose events may never have gone out, so its current links are announced again.
    """
    thread = await repository.add_message_to_thread(
        stored.thread_id, message, message_moment(message)
    )
    if not thread.manually_linked:
        owners = [message.owner_address, *await repository.mailbox_addresses(thread.mailbox_ids)]
        addresses = counterpart_addresses(thread.participants, owners)
        contacts, companies, deals = await repository.records_for(addresses)
        current = thread_links(thread)
        found = link_records(addresses, contacts, companies, deals, automated=thread.automated)
        grown = current.union(found)
        if grown.ids() != current.ids():
            thread = await repository.set_links(thread.id, grown)
    links_changed = thread_links(thread).ids() != thread_links(before).ids()
    return Logged(message, stored, thread, publish=True, links_changed=links_changed, rule=rule)
