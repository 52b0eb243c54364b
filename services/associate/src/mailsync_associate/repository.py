"""Associate's reads and writes of one workspace's messages, threads and records.

Every write is a single-document atomic update (`$addToSet`, `$min`, `$max`,
`$setOnInsert`) or an insert guarded by a unique index, so repeating any step after a crash
changes nothing that was already written.

Threading's look-ups all go by `_id`, which a MongoDB-wire server answers from its index
whatever the size of the mailbox (a search by list membership, `$in` or `$or`, reads a whole
collection on FerretDB). A stored message's `_id` is derived from its `Message-ID`; and
`thread_refs` answers "which threads list this id, carry this provider thread id, or this
subject": one document per key, `_id` derived from the key, holding the thread ids. A thread
merged away stays in the refs that named it; look-ups skip threads that no longer exist.
"""

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from pymongo.errors import DuplicateKeyError

from mailsync_associate.threading import (
    aware,
    loose_keys,
    may_join_by_subject,
    parent_ids,
    provider_key,
    subject_key,
)
from mailsync_shared.association.automated import thread_automation
from mailsync_shared.association.linking import Links
from mailsync_shared.association.records import (
    links_update,
    mailbox_addresses,
    records_for,
    thread_links,
    thread_ref_id,
)
from mailsync_shared.association.scope import Unlogged, forget_unlogged, record_skipped, stopped
from mailsync_shared.contracts.mail import MailMessage
from mailsync_shared.event_privacy import visibility_of
from mailsync_shared.ids import stable_id
from mailsync_shared.storage.documents import (
    CompanyDocument,
    ContactDocument,
    DealDocument,
    MessageDocument,
    ThreadDocument,
    Visibility,
)
from mailsync_shared.storage.raw_messages import load_raw
from mailsync_shared.storage.scoped import WorkspaceStore

# Fields a new thread starts without, so that `$min`/`$max`/`$addToSet` set them.
GROWN_FIELDS = (
    "_id",
    "workspace_id",
    "message_ids",
    "participants",
    "mailbox_ids",
    "provider_thread_ids",
    "first_message_at",
    "last_message_at",
    "logged_message_ids",
    "loose_subject_keys",
    "loose_reply_subject_keys",
)


def message_document_id(workspace_id: str, message_id: str) -> str:
    """A logged message's `_id`: one per `Message-ID` in a workspace."""
    return stable_id("message", workspace_id, message_id)


def ref_id(workspace_id: str, kind: str, value: str) -> str:
    return thread_ref_id(workspace_id, kind, value)


def thread_keys(message: MailMessage) -> list[tuple[str, str]]:
    """The refs a thread holding `message` is found by: ids it lists, provider id, subject."""
    keys = [("message-id", m) for m in [message.message_id, *parent_ids(message)]]
    provider = provider_key(message)
    if provider is not None:
        keys.append(("provider", provider))
    subject = subject_key(message.subject)
    if subject:
        keys.append(("subject", subject))
    return keys


def lookup_keys(message: MailMessage) -> list[tuple[str, str]]:
    """The refs threading may read for `message`: its subject only when rule 3 applies."""
    return [
        key for key in thread_keys(message) if key[0] != "subject" or may_join_by_subject(message)
    ]


def keys_of(thread: ThreadDocument) -> list[tuple[str, str]]:
    keys = [("message-id", m) for m in thread.message_ids]
    keys += [("provider", p) for p in thread.provider_thread_ids]
    subjects = [thread.subject_key] if thread.subject_key else []
    keys += [("subject", s) for s in dict.fromkeys([*subjects, *thread.loose_subject_keys])]
    return keys


GROWING_LISTS = (  # a thread's list fields, which only ever gain values
    "message_ids",
    "participants",
    "mailbox_ids",
    "provider_thread_ids",
    "logged_message_ids",
    "loose_subject_keys",
    "loose_reply_subject_keys",
)
_SCALARS = ("subject", "subject_key", "message_count", "automated")


def grown(thread: ThreadDocument, **lists: Iterable[str]) -> ThreadDocument:
    """The thread with values added to its lists, as `$addToSet` adds them."""
    return thread.model_copy(
        update={
            name: list(dict.fromkeys([*getattr(thread, name), *values]))
            for name, values in lists.items()
        }
    )


def thread_write(stored: ThreadDocument | None, current: ThreadDocument) -> dict[str, Any] | None:
    """The update that brings the stored thread (None: not created yet) to `current`."""
    update: dict[str, Any] = {}
    additions = {
        name: [v for v in getattr(current, name) if v not in set(getattr(stored, name, []))]
        for name in GROWING_LISTS
    }
    if any(additions.values()):
        update["$addToSet"] = {name: {"$each": v} for name, v in additions.items() if v}
    first, last = current.first_message_at, current.last_message_at
    if first is not None and (stored is None or stored.first_message_at != first):
        update["$min"] = {"first_message_at": first}
    if last is not None and (stored is None or stored.last_message_at != last):
        update["$max"] = {"last_message_at": last}
    fields = {
        name: getattr(current, name)
        for name in _SCALARS
        if stored is None or getattr(stored, name) != getattr(current, name)
    }
    if stored is None:
        fields |= links_update(thread_links(current))
        fresh = current.to_document()
        update["$setOnInsert"] = {
            name: value
            for name, value in fresh.items()
            if name not in GROWN_FIELDS and name not in fields
        }
    if fields:
        update["$set"] = fields
    return update or None


def with_message(thread: ThreadDocument, message: MailMessage, at: datetime) -> ThreadDocument:
    """The thread once `message`, dated `at`, is logged on it."""
    key = provider_key(message)
    loose, loose_replies = loose_keys(message)
    after = grown(
        thread,
        loose_subject_keys=loose,
        loose_reply_subject_keys=loose_replies,
        message_ids=[message.message_id, *parent_ids(message)],
        participants=[p.address.lower() for p in message.participants()],
        mailbox_ids=[message.mailbox_id],
        provider_thread_ids=[key] if key is not None else [],
        logged_message_ids=[message.message_id],
    )
    first, last = thread.first_message_at, thread.last_message_at
    fields: dict[str, Any] = {
        "message_count": len(after.logged_message_ids),
        "automated": thread_automation(
            thread.automated,
            message,
            first=set(thread.logged_message_ids) <= {message.message_id},
        ),
        "first_message_at": at if first is None or at < aware(first) else first,
        "last_message_at": at if last is None or at > aware(last) else last,
    }
    if first is None or at < aware(first):
        fields |= {"subject": message.subject, "subject_key": subject_key(message.subject)}
    return after.model_copy(update=fields)


class ThreadRefs(Protocol):
    """Threads by `_id` and the thread ids that refs name: what threading's look-ups read."""

    async def thread(self, thread_id: str) -> ThreadDocument | None: ...

    async def thread_ids_for(self, keys: Iterable[tuple[str, str]]) -> set[str]: ...


class RefLookup:
    """Threading's look-ups (`threading.ThreadLookup`) answered from thread refs."""

    def __init__(self, refs: ThreadRefs) -> None:
        self._refs = refs

    async def referenced(self, keys: Iterable[tuple[str, str]]) -> list[ThreadDocument]:
        """The existing threads the refs with these keys name."""
        thread_ids = sorted(await self._refs.thread_ids_for(keys))
        found = await asyncio.gather(*(self._refs.thread(i) for i in thread_ids))
        return [thread for thread in found if thread is not None]

    async def threads_listing(self, message_ids: Sequence[str]) -> list[ThreadDocument]:
        return await self.referenced(("message-id", m) for m in message_ids)

    async def thread_with_provider_key(self, key: str) -> ThreadDocument | None:
        found = [
            t for t in await self.referenced([("provider", key)]) if key in t.provider_thread_ids
        ]
        return max(found, key=lambda t: (t.last_message_at is not None, t.id), default=None)

    async def threads_with_subject(
        self, key: str, around: datetime, window: timedelta
    ) -> list[ThreadDocument]:
        return [
            thread
            for thread in await self.referenced([("subject", key)])
            if (thread.subject_key == key or key in thread.loose_subject_keys)
            and thread.first_message_at is not None
            and thread.last_message_at is not None
            and aware(thread.first_message_at) <= around + window
            and aware(thread.last_message_at) >= around - window
        ]


class AssociateRepository:
    def __init__(self, store: WorkspaceStore) -> None:
        self._store = store
        self._lookup = RefLookup(self)

    @property
    def workspace_id(self) -> str:
        return self._store.workspace_id

    # -- thread look-ups (threading.ThreadLookup) ---------------------------------------------

    async def thread(self, thread_id: str) -> ThreadDocument | None:
        document = await self._store.threads.find_one({"_id": thread_id})
        return None if document is None else ThreadDocument.from_document(document)

    async def thread_ids_for(self, keys: Iterable[tuple[str, str]]) -> set[str]:
        """The ids of the threads the refs with these keys name (some may be merged away)."""
        by_key = await self.thread_ids_by_key(keys)
        return {thread_id for named in by_key.values() for thread_id in named}

    async def thread_ids_by_key(
        self, keys: Iterable[tuple[str, str]]
    ) -> dict[tuple[str, str], set[str]]:
        """For each key, the ids of the threads its ref names; the refs are read together."""
        ids = {key: ref_id(self.workspace_id, *key) for key in dict.fromkeys(keys)}
        refs = await self._store.thread_refs.find_by_ids(ids.values(), projection={"thread_ids": 1})
        return {
            key: set(refs[found]["thread_ids"]) if found in refs else set()
            for key, found in ids.items()
        }

    async def add_refs(self, thread_id: str, keys: Iterable[tuple[str, str]]) -> None:
        """Make the thread findable by each key (idempotent)."""
        unique = list(dict.fromkeys(keys))
        if not unique:
            return
        await self._store.thread_refs.update_each(
            [
                (
                    {"_id": ref_id(self.workspace_id, kind, value)},
                    {"$addToSet": {"thread_ids": thread_id}},
                )
                for kind, value in unique
            ],
            upsert=True,
        )

    async def threads_listing(self, message_ids: Sequence[str]) -> list[ThreadDocument]:
        return await self._lookup.threads_listing(message_ids)

    async def thread_with_provider_key(self, key: str) -> ThreadDocument | None:
        return await self._lookup.thread_with_provider_key(key)

    async def threads_with_subject(
        self, key: str, around: datetime, window: timedelta
    ) -> list[ThreadDocument]:
        return await self._lookup.threads_with_subject(key, around, window)

    # -- messages -------------------------------------------------------------------------------

    async def message(self, message_id: str) -> MessageDocument | None:
        document_id = message_document_id(self.workspace_id, message_id)
        document, announced = await asyncio.gather(
            self._store.messages.find_one({"_id": document_id}),
            self._store.announced_messages.find_one({"_id": document_id}, projection={"_id": 1}),
        )
        if document is None:
            return None
        stored = MessageDocument.from_document(document)
        return stored.model_copy(update={"events_published": announced is not None})

    async def mark_all_published(self, message_ids: Sequence[str]) -> None:
        """Record that the events of these logged messages were confirmed."""
        await self._store.announced_messages.insert_new(
            [{"_id": message_document_id(self.workspace_id, m)} for m in message_ids]
        )

    async def insert_message(self, message: MessageDocument) -> bool:
        """Insert the message; False when the workspace already has its `Message-ID`."""
        try:
            await self._store.messages.insert_one(message.to_document())
        except DuplicateKeyError:
            return False
        return True

    async def add_copy(self, stored: MessageDocument, message: MailMessage) -> None:
        """Record one more mailbox copy of a logged message (idempotent)."""
        additions: dict[str, Any] = {"mailbox_ids": message.mailbox_id}
        if message.source is not None:
            additions["sources"] = message.source.model_dump(mode="python")
        update: dict[str, Any] = {"$addToSet": additions}
        if message.send_request_id and not stored.send_request_id:
            update["$set"] = {"send_request_id": message.send_request_id}
        await self._store.messages.update_one({"_id": stored.id}, update)

    async def raw(self, raw_id: str) -> bytes | None:
        return await load_raw(self._store, raw_id)

    # -- threads --------------------------------------------------------------------------------

    async def open_thread(self, thread_id: str, message: MailMessage) -> None:
        """Create the thread if needed and list the message's own and parent ids on it.

        Written before the message itself, so a redelivery after a crash finds this thread
        by the message's own id.
        """
        fresh = ThreadDocument(
            id=thread_id,
            workspace_id=self.workspace_id,
            subject=message.subject,
            subject_key=subject_key(message.subject),
        ).to_document()
        for name in GROWN_FIELDS:
            fresh.pop(name, None)
        update = {
            "$setOnInsert": fresh,
            "$addToSet": {"message_ids": {"$each": [message.message_id, *parent_ids(message)]}},
        }
        try:
            await self._store.threads.update_one({"_id": thread_id}, update, upsert=True)
        except DuplicateKeyError:
            # Created concurrently by another copy of the message: it exists now.
            await self._store.threads.update_one({"_id": thread_id}, update)
        await self.add_refs(thread_id, thread_keys(message))

    async def merge_thread(self, source_id: str, into: str) -> None:
        """Fold thread `source_id` into thread `into`: messages move, lists and links join."""
        source = await self.thread(source_id)
        if source is None:
            return
        await self.merge_threads(source, into, await self.thread(into))

    async def merge_threads(
        self, source: ThreadDocument, into: str, target: ThreadDocument | None
    ) -> None:
        """`merge_thread` of threads already read: `source` and `target` (None: not stored)."""
        source_id = source.id
        # A person's links are kept as they set them: automatic links do not join them.
        keep_links = target is not None and target.manually_linked and not source.manually_linked
        await self.add_refs(into, keys_of(source))
        await self._store.messages.update_many(
            {"thread_id": source_id}, {"$set": {"thread_id": into}}
        )
        await self._store.send_requests.update_many(
            {"thread_id": source_id}, {"$set": {"thread_id": into}}
        )
        update: dict[str, Any] = {
            "$addToSet": {
                name: {"$each": values}
                for name, values in (
                    ("message_ids", source.message_ids),
                    ("participants", source.participants),
                    ("mailbox_ids", source.mailbox_ids),
                    ("provider_thread_ids", source.provider_thread_ids),
                    ("logged_message_ids", source.logged_message_ids),
                    ("loose_subject_keys", source.loose_subject_keys),
                    ("loose_reply_subject_keys", source.loose_reply_subject_keys),
                    ("contact_ids", [] if keep_links else source.contact_ids),
                    ("company_ids", [] if keep_links else source.company_ids),
                    ("deal_ids", [] if keep_links else source.deal_ids),
                    (
                        "link_reasons",
                        []
                        if keep_links
                        else [r.model_dump(mode="python") for r in source.link_reasons],
                    ),
                )
                if values
            }
        }
        if source.first_message_at is not None:
            update["$min"] = {"first_message_at": source.first_message_at}
        if source.last_message_at is not None:
            update["$max"] = {"last_message_at": source.last_message_at}
        flags: dict[str, Any] = {"manually_linked": True} if source.manually_linked else {}
        if source.logged_message_ids and source.automated is None:
            flags["automated"] = None  # a person wrote in the merged thread
        elif source.automated and target is not None and not target.logged_message_ids:
            flags["automated"] = source.automated
        if source.private:
            flags["private"] = True
        if flags:
            update["$set"] = flags
        if not update["$addToSet"]:
            del update["$addToSet"]
        if len(update) > 0:
            await self._store.threads.update_one({"_id": into}, update)
        await self._store.threads.delete_many({"_id": source_id})

    async def add_message_to_thread(
        self, thread_id: str, message: MailMessage, at: datetime
    ) -> ThreadDocument:
        """Add the message's ids, participants and mailbox to the thread; return the thread.

        One workspace's messages are logged one at a time, so the thread read here is the
        one the update applies to.
        """
        before = await self.thread(thread_id)
        if before is None:
            raise LookupError(f"thread {thread_id} vanished while adding a message")
        update = thread_write(before, with_message(before, message, at))
        if update is None:
            return before
        updated = await self._store.threads.find_one_and_update({"_id": thread_id}, update)
        if updated is None:
            raise LookupError(f"thread {thread_id} vanished while adding a message")
        return ThreadDocument.from_document(updated)

    async def add_mailbox_to_thread(self, thread_id: str, mailbox_id: str) -> None:
        await self._store.threads.update_one(
            {"_id": thread_id}, {"$addToSet": {"mailbox_ids": mailbox_id}}
        )

    async def set_links(self, thread_id: str, links: Links) -> ThreadDocument:
        """Store automatic links on a thread its caller found not linked by hand.

        Written by `_id` alone (what the store answers from its index); should a person have
        linked the thread in the moment since it was read, their links are put back at once.
        """
        before = await self._store.threads.find_one_and_update(
            {"_id": thread_id}, {"$set": links_update(links)}, return_new=False
        )
        if before is None:
            raise LookupError(f"thread {thread_id} vanished while linking it")
        previous = ThreadDocument.from_document(before)
        if previous.manually_linked:
            await self._store.threads.update_one(
                {"_id": thread_id}, {"$set": links_update(thread_links(previous))}
            )
            return previous
        return previous.model_copy(
            update={
                "contact_ids": list(links.contact_ids),
                "company_ids": list(links.company_ids),
                "deal_ids": list(links.deal_ids),
                "link_reasons": list(links.reasons),
            }
        )

    # -- records and scope -----------------------------------------------------------------------

    async def mailbox_addresses(self, mailbox_ids: Sequence[str]) -> list[str]:
        return await mailbox_addresses(self._store, mailbox_ids)

    async def records_for(
        self, addresses: Sequence[str]
    ) -> tuple[list[ContactDocument], list[CompanyDocument], list[DealDocument]]:
        """Active contacts, companies and open deals that might match the addresses."""
        return await records_for(self._store, addresses)

    async def mailbox_scope(self, mailbox_id: str) -> str:
        document = await self._store.mailboxes.find_one(
            {"_id": mailbox_id}, projection={"sync.scope": 1}
        )
        return str(((document or {}).get("sync") or {}).get("scope") or "all")

    async def mailbox_visibility(self, mailbox_id: str) -> Visibility | None:
        """The mailbox's visibility; None when it is gone."""
        document = await self._store.mailboxes.find_one(
            {"_id": mailbox_id}, projection={"visibility": 1}
        )
        return None if document is None else visibility_of(document)

    async def mailbox_stopped(self, mailbox_id: str) -> bool:
        """The mailbox was disconnected or erased: its mail is dropped, not logged."""
        document = await self._store.mailboxes.find_one(
            {"_id": mailbox_id}, projection={"status.state": 1, "erased_at": 1}
        )
        return document is not None and stopped(document)

    async def forget(self, message: MailMessage) -> None:
        """Delete what ingest and capture kept of a message that is not logged."""
        await forget_unlogged(
            self._store, [Unlogged(message.mailbox_id, message.message_id, message.raw_id)]
        )

    async def record_skipped(self, message: MailMessage) -> None:
        await record_skipped(self._store, message.mailbox_id, message.message_id)
        await self.forget(message)
