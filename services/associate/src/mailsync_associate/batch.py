"""Associate over a batch of one workspace's messages: reads made together, writes together.

`BatchRepository` is what the logbook logs a batch's messages against
(`logbook.LogbookRepository`), wrapped around the repository that reads and writes the store
directly (`repository.AssociateRepository`). It answers the logbook's look-ups from what `load`
read for the whole batch at once (stored messages, thread refs, threads, raw bytes, mailboxes,
records), kept current with what the batch itself changes, so each message is threaded and
linked exactly as if the batch's messages had been logged one after another; what `load` did
not read is asked of the store. Its writes are held in memory and `flush` writes them
together: one write per thread touched and the refs, then the new messages. A thread merge,
which is rare, writes what is held first and then merges in the store.

A crash before or during `flush` leaves what a crash in the middle of logging one message
leaves, and redelivery finishes it the same way (see `logbook`): threads and refs are written
before the messages that need them, and every write is an idempotent `$addToSet`, `$min`,
`$max`, `$set` of a value computed from the thread itself, or an insert by a unique `_id`.
"""

import asyncio
from collections import defaultdict
from collections.abc import Iterable, Sequence, Set
from datetime import datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from mailsync_associate.logbook import Dropped, Logged, Skipped, log_message
from mailsync_associate.repository import (
    AssociateRepository,
    RefLookup,
    grown,
    lookup_keys,
    ref_id,
    thread_keys,
    thread_write,
    with_message,
)
from mailsync_associate.threading import parent_ids, subject_key
from mailsync_shared.association.linking import Links
from mailsync_shared.association.scope import (
    Unlogged,
    forget_unlogged,
    mailbox_flags,
    record_skipped,
    stopped,
)
from mailsync_shared.contracts.mail import MailMessage
from mailsync_shared.event_privacy import visibility_of
from mailsync_shared.ids import stable_id
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import (
    CompanyDocument,
    ContactDocument,
    DealDocument,
    MessageDocument,
    ThreadDocument,
    Visibility,
)
from mailsync_shared.storage.mailbox_directory import DIRECTORY
from mailsync_shared.storage.raw_messages import load_raw_many
from mailsync_shared.storage.scoped import WorkspaceStore


class MailboxStoppedError(Exception):
    """A mailbox of the batch was disconnected or erased while the batch was logged."""


Records = tuple[list[ContactDocument], list[CompanyDocument], list[DealDocument]]

_LINKS = ("contact_ids", "company_ids", "deal_ids", "link_reasons")


class BatchRepository:
    def __init__(self, store: WorkspaceStore, *, announcing: Set[str] = frozenset()) -> None:
        """`announcing`: the `Message-ID`s whose events an earlier batch is publishing."""
        self._store = store
        self._direct = AssociateRepository(store)
        self._lookup = RefLookup(self)
        self._announcing = announcing
        self._messages: dict[str, MessageDocument | None] = {}
        self._threads: dict[str, ThreadDocument | None] = {}
        self._stored_threads: dict[str, ThreadDocument | None] = {}
        self._refs: dict[tuple[str, str], set[str]] = {}
        self._raw: dict[str, bytes | None] = {}
        self._owners: dict[str, str] = {}
        self._scopes: dict[str, str] = {}
        self._visibilities: dict[str, Visibility] = {}
        self._stopped: dict[str, bool] = {}
        self._unlogged: list[Unlogged] = []
        self._records: Records = ([], [], [])
        self._records_for: set[str] = set()
        self._touched: dict[str, None] = {}
        self._relinked: dict[str, Links] = {}
        self._new_refs: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
        self._inserts: dict[str, MessageDocument] = {}

    @property
    def workspace_id(self) -> str:
        return self._store.workspace_id

    # -- reading the batch's working set --------------------------------------------------------

    async def load(self, messages: Sequence[MailMessage]) -> None:
        """Read at once what logging these messages will look up."""
        ids = list(dict.fromkeys(message.message_id for message in messages))
        keys = list(dict.fromkeys(key for message in messages for key in lookup_keys(message)))
        raw_ids = sorted({message.raw_id for message in messages if message.raw_id})
        by_key, raws, mailboxes = await asyncio.gather(
            self._direct.thread_ids_by_key(keys),
            load_raw_many(self._store, raw_ids),
            DIRECTORY.entries(self._store, including=[m.mailbox_id for m in messages]),
        )
        refs = [by_key[key] for key in keys]
        self._refs.update((key, set(found)) for key, found in zip(keys, refs, strict=True))
        # Refs are written before the message that needs them: a Message-ID no ref lists
        # cannot be stored yet, so only the listed ones are read.
        listed = [m for m in ids if self._refs[("message-id", m)]]
        found = await asyncio.gather(*(self._stored_message(m) for m in listed))
        self._messages.update(dict.fromkeys(ids))
        self._messages.update(zip(listed, found, strict=True))
        stored = [m for m in found if m is not None]
        self._raw.update(raws)
        for mailbox_id, entry in mailboxes.items():
            self._owners[mailbox_id] = entry.address
            self._scopes[mailbox_id] = entry.scope
        await self._read_flags(list(dict.fromkeys(m.mailbox_id for m in messages)))
        thread_ids = {m.thread_id for m in stored}
        thread_ids |= {thread_id for named in refs for thread_id in named}
        await self._load_threads(thread_ids)
        # A thread a message would open is listed under the message's own id once it exists;
        # not listed, it is new (or was opened by a try that crashed before listing it, and
        # then holds nothing else: the flush adds to it).
        for message in messages:
            opened = stable_id("thread", self.workspace_id, message.message_id)
            if opened not in self._threads:
                self._threads[opened] = self._stored_threads[opened] = None
        addresses = {p.address.lower() for message in messages for p in message.participants()}
        await self.records_for(sorted(addresses))

    async def _load_threads(self, thread_ids: Iterable[str]) -> None:
        wanted = sorted(set(thread_ids) - set(self._threads))
        found = await asyncio.gather(*(self._direct.thread(t) for t in wanted))
        for thread_id, thread in zip(wanted, found, strict=True):
            self._threads[thread_id] = thread
            self._stored_threads[thread_id] = thread

    async def thread(self, thread_id: str) -> ThreadDocument | None:
        if thread_id not in self._threads:
            await self._load_threads([thread_id])
        return self._threads[thread_id]

    async def threads_listing(self, message_ids: Sequence[str]) -> list[ThreadDocument]:
        return await self._lookup.threads_listing(message_ids)

    async def thread_with_provider_key(self, key: str) -> ThreadDocument | None:
        return await self._lookup.thread_with_provider_key(key)

    async def threads_with_subject(
        self, key: str, around: datetime, window: timedelta
    ) -> list[ThreadDocument]:
        return await self._lookup.threads_with_subject(key, around, window)

    async def message(self, message_id: str) -> MessageDocument | None:
        if message_id not in self._messages:
            self._messages[message_id] = await self._stored_message(message_id)
        return self._messages[message_id]

    async def _stored_message(self, message_id: str) -> MessageDocument | None:
        stored = await self._direct.message(message_id)
        if stored is not None and message_id in self._announcing:
            # Its events are on their way: a copy in this batch only adds its mailbox. Should
            # they fail, the message's own delivery is retried and announces it.
            return stored.model_copy(update={"events_published": True})
        return stored

    async def thread_ids_for(self, keys: Iterable[tuple[str, str]]) -> set[str]:
        keys = list(keys)
        missing = [key for key in keys if key not in self._refs]
        if missing:
            found = await self._direct.thread_ids_by_key(missing)
            for key in missing:
                self._refs[key] = found[key] | self._new_refs.get(key, set())
        return {thread_id for key in keys for thread_id in self._refs[key]}

    async def raw(self, raw_id: str) -> bytes | None:
        if raw_id not in self._raw:
            return await self._direct.raw(raw_id)
        return self._raw.pop(raw_id)

    async def mailbox_addresses(self, mailbox_ids: Sequence[str]) -> list[str]:
        if not set(mailbox_ids) <= set(self._owners):
            return await self._direct.mailbox_addresses(mailbox_ids)
        return [self._owners[m] for m in mailbox_ids if self._owners[m]]

    async def _read_flags(self, mailbox_ids: Sequence[str]) -> None:
        """The batch's mailboxes' visibility and whether they are stopped, read fresh."""
        for mailbox_id, document in (await mailbox_flags(self._store, mailbox_ids)).items():
            self._visibilities[mailbox_id] = visibility_of(document)
            self._stopped[mailbox_id] = stopped(document)

    async def stopped_since_loaded(self) -> list[str]:
        """The batch's mailboxes disconnected or erased since the batch was read."""
        named = [mailbox_id for mailbox_id, was in self._stopped.items() if not was]
        await self._read_flags(named)
        return [mailbox_id for mailbox_id in named if self._stopped[mailbox_id]]

    async def mailbox_stopped(self, mailbox_id: str) -> bool:
        if mailbox_id in self._stopped:
            return self._stopped[mailbox_id]
        return await self._direct.mailbox_stopped(mailbox_id)

    async def forget(self, message: MailMessage) -> None:
        """Deferred to `flush`: a message of this batch may still come to name the bytes."""
        self._unlogged.append(Unlogged(message.mailbox_id, message.message_id, message.raw_id))

    async def record_skipped(self, message: MailMessage) -> None:
        """Counted at once; what was kept of the message is forgotten at `flush`."""
        await record_skipped(self._store, message.mailbox_id, message.message_id)
        await self.forget(message)

    async def mailbox_visibility(self, mailbox_id: str) -> Visibility | None:
        if mailbox_id in self._visibilities:
            return self._visibilities[mailbox_id]
        return await self._direct.mailbox_visibility(mailbox_id)

    async def mailbox_scope(self, mailbox_id: str) -> str:
        if mailbox_id not in self._scopes:
            self._scopes[mailbox_id] = await self._direct.mailbox_scope(mailbox_id)
        return self._scopes[mailbox_id]

    async def records_for(self, addresses: Sequence[str]) -> Records:
        """A superset of the records matching `addresses`; linking picks the matching ones."""
        missing = set(addresses) - self._records_for
        if missing:
            self._records = await self._direct.records_for(sorted(self._records_for | missing))
            self._records_for |= missing
        return self._records

    async def log(
        self, message: MailMessage, *, replied_thread_id: str | None = None
    ) -> Logged | Skipped | Dropped:
        """Log one message of the batch (`logbook.log_message`) against its working set."""
        logged = await log_message(self, message, replied_thread_id=replied_thread_id)
        if isinstance(logged, Logged) and logged.publish:
            self.will_publish(logged.stored)
        return logged

    # -- writes, held until `flush` -------------------------------------------------------------

    def _change(self, thread: ThreadDocument) -> ThreadDocument:
        self._threads[thread.id] = thread
        self._touched[thread.id] = None
        return thread

    async def add_refs(self, thread_id: str, keys: Iterable[tuple[str, str]]) -> None:
        for key in keys:
            if key in self._refs:  # a key never read is read with the batch's additions
                self._refs[key].add(thread_id)
            self._new_refs[key].add(thread_id)

    async def open_thread(self, thread_id: str, message: MailMessage) -> None:
        thread = await self.thread(thread_id)
        if thread is None:
            thread = ThreadDocument(
                id=thread_id,
                workspace_id=self.workspace_id,
                subject=message.subject,
                subject_key=subject_key(message.subject),
            )
        self._change(grown(thread, message_ids=[message.message_id, *parent_ids(message)]))
        await self.add_refs(thread_id, thread_keys(message))

    async def insert_message(self, message: MessageDocument) -> bool:
        if await self.message(message.message_id) is not None:
            return False
        self._messages[message.message_id] = message
        self._inserts[message.message_id] = message
        return True

    async def add_copy(self, stored: MessageDocument, message: MailMessage) -> None:
        pending = self._inserts.get(stored.message_id)
        if pending is None:
            await self._direct.add_copy(stored, message)
            return
        sources = list(pending.sources)
        if message.source is not None and message.source not in sources:
            sources.append(message.source)
        update: dict[str, Any] = {
            "mailbox_ids": list(dict.fromkeys([*pending.mailbox_ids, message.mailbox_id])),
            "sources": sources,
        }
        if message.send_request_id and not pending.send_request_id:
            update["send_request_id"] = message.send_request_id
        self._inserts[stored.message_id] = pending.model_copy(update=update)
        cached = self._messages[stored.message_id]
        if cached is not None:
            self._messages[stored.message_id] = cached.model_copy(update=update)

    def will_publish(self, message: MessageDocument) -> None:
        """The message's events go out with this batch: a later copy in it only adds a source."""
        cached = self._messages.get(message.message_id) or message
        self._messages[message.message_id] = cached.model_copy(update={"events_published": True})

    async def add_message_to_thread(
        self, thread_id: str, message: MailMessage, at: datetime
    ) -> ThreadDocument:
        before = await self.thread(thread_id)
        if before is None:
            raise LookupError(f"thread {thread_id} vanished while adding a message")
        return self._change(with_message(before, message, at))

    async def add_mailbox_to_thread(self, thread_id: str, mailbox_id: str) -> None:
        thread = await self.thread(thread_id)
        if thread is not None and mailbox_id not in thread.mailbox_ids:
            self._change(grown(thread, mailbox_ids=[mailbox_id]))

    async def set_links(self, thread_id: str, links: Links) -> ThreadDocument:
        thread = await self.thread(thread_id)
        if thread is None:
            raise LookupError(f"thread {thread_id} vanished while linking it")
        if self._stored_threads.get(thread_id) is not None:
            # An existing thread: written on its own at `flush`, where a person's links win.
            self._relinked[thread_id] = links
        return self._change(
            thread.model_copy(
                update={
                    "contact_ids": list(links.contact_ids),
                    "company_ids": list(links.company_ids),
                    "deal_ids": list(links.deal_ids),
                    "link_reasons": list(links.reasons),
                }
            )
        )

    async def merge_thread(self, source_id: str, into: str) -> None:
        await self.flush()
        source = await self.thread(source_id)
        if source is not None:
            await self._direct.merge_threads(source, into, await self.thread(into))
        for thread_ids in self._refs.values():
            if source_id in thread_ids:
                thread_ids.add(into)
        for message_id, stored in self._messages.items():
            if stored is not None and stored.thread_id == source_id:
                self._messages[message_id] = stored.model_copy(update={"thread_id": into})
        for thread_id in (source_id, into):
            self._threads.pop(thread_id, None)
            self._stored_threads.pop(thread_id, None)
        await self._load_threads([source_id, into])

    async def flush(self) -> set[str]:
        """Write what the batch changed; the `Message-ID`s another writer had stored first.

        A mailbox of the batch disconnected or erased meanwhile fails the batch before any
        write (`MailboxStoppedError`): redelivered, its messages are dropped, so an erase is
        never undone by mail that was on its way.
        """
        stopped_now = await self.stopped_since_loaded()
        if stopped_now:
            raise MailboxStoppedError(f"mailboxes {', '.join(stopped_now)} stopped meanwhile")
        created: list[tuple[Document, dict[str, Any]]] = []
        changed: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for thread_id in self._touched:
            current = self._threads[thread_id]
            if current is None:
                continue
            if thread_id in self._relinked:  # links go on their own write below
                current = current.model_copy(
                    update={name: getattr(self._stored_threads[thread_id], name) for name in _LINKS}
                )
            stored = self._stored_threads.get(thread_id)
            update = thread_write(stored, current)
            if update is None:
                continue
            if stored is None:
                created.append((current.to_document(), update))
            else:
                changed.append(({"_id": thread_id}, update))
        refs: list[tuple[Document, dict[str, Any]]] = [
            (
                {"_id": ref_id(self.workspace_id, kind, value), "thread_ids": sorted(thread_ids)},
                {"$addToSet": {"thread_ids": {"$each": sorted(thread_ids)}}},
            )
            for (kind, value), thread_ids in self._new_refs.items()
        ]
        await self._store.threads.insert_or_update(created)
        await self._store.threads.update_each(changed)
        await self._store.thread_refs.insert_or_update(refs)
        for thread_id, links in self._relinked.items():
            await self._direct.set_links(thread_id, links)
        lost = await self._insert_messages(list(self._inserts.values()))
        await forget_unlogged(self._store, self._unlogged)
        self._unlogged.clear()
        for thread_id in self._touched:
            self._stored_threads[thread_id] = self._threads[thread_id]
        self._touched.clear()
        self._relinked.clear()
        self._new_refs.clear()
        self._inserts.clear()
        return lost

    async def mark_all_published(self, message_ids: Sequence[str]) -> None:
        await self._direct.mark_all_published(message_ids)

    async def _insert_messages(self, messages: list[MessageDocument]) -> set[str]:
        taken = await self._store.messages.insert_new([m.to_document() for m in messages])
        return {messages[i].message_id for i in taken}


class StoreBatches:
    """Batches over the workspaces of one database (`batch_logbook.Batches`)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    def open(self, workspace_id: str, announcing: Set[str]) -> BatchRepository:
        return BatchRepository(WorkspaceStore(self._db, workspace_id), announcing=announcing)
