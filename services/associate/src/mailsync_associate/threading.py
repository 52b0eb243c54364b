"""Which thread a message belongs to.

Mail arrives out of order: a reply can be fetched before the message it answers (a backfill
runs newest first), two mailboxes of one workspace see the same conversation, and a message
sent through Mailsync is logged before ingest sees its copy in the Sent folder. So the rules
below are links between pairs of messages that hold whichever arrives first, and a thread is
everything linked together: a message joins *every* thread it links to, merging them. The same
messages give the same threads in any processing order (a property test runs permutations).

1. **Headers.** The message's parents are its `In-Reply-To` and `References` ids. Its
   thread is any thread that lists one of the parents, or the message's own `Message-ID`,
   in `message_ids`. A thread lists every id its messages are or mention, not only the ids
   of stored messages, so a parent known only by reference (never fetched, or not fetched
   yet) still joins its replies, and a parent that arrives after its reply finds the
   reply's thread (the child that arrived first listed its parent's id).

   For a message sent through Mailsync, the thread the api replied on counts as found
   too. When the rules find several threads, the message proves they are one
   conversation: they are merged into one, keeping the thread a person linked by hand,
   else the oldest. A merged thread's messages move over and its links are kept.

2. **Provider thread id.** A provider thread id (Gmail's `X-GM-THRID`) links to the thread
   that has it. Provider ids are per mailbox, so they are stored as `<mailbox_id>:<id>`.

3. **Subject, guarded.** Only between two messages that have no `In-Reply-To` or
   `References` ("loose" messages: headers cannot place them), of which at least one looks
   like a reply or forward (`Re:`/`Fwd:` prefix), with the same normalized subject, sharing
   an outside party (a participant other than the mailbox owner, who is on every thread of
   their mailbox, and the owner's colleagues at the same domain: a forward to a colleague is
   not the client conversation with the same subject), within 30 days of each other. So a
   header-less reply joins its original whichever is processed first: a reply-like message
   looks for threads with a loose message of that subject (`loose_subject_keys`), an
   original looks for threads with a loose reply of that subject
   (`loose_reply_subject_keys`). Subjects like "Invoice" recur between the same people, so
   two messages without reply markers never join by subject alone; and a reply with
   parents is placed by its headers only (whether its parent is logged yet depends on the
   order, so "parents that matched nothing" cannot be a rule).

4. A message that links to nothing starts a new thread.

```
 message ──▶ threads listing its parents or its own id          (headers)
           + the thread with its provider thread id             (provider)
           + loose, same subject, one reply-like, shared party,
             within 30 days                                     (subject)
           ── none: new thread; one: that thread; several: merged into one
```
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from mailsync_shared.capture_policy.rules import free_mail_domains
from mailsync_shared.contracts.mail import MailMessage
from mailsync_shared.mail.addresses import domain_of
from mailsync_shared.storage.documents import ThreadDocument

SUBJECT_WINDOW = timedelta(days=30)

ThreadRule = Literal["headers", "send_request", "provider_thread", "subject", "new"]

_REPLY_PREFIX = re.compile(
    r"^\s*((re|fwd?|aw|wg|sv|vs|antw|tr|rv|ref|r)(\[\d+\])?\s*:\s*)+", re.IGNORECASE
)
_LIST_TAG = re.compile(r"^\s*\[[^\]]{1,40}\]\s*")
_SPACES = re.compile(r"\s+")


def subject_key(subject: str) -> str:
    """The subject without reply/forward prefixes and list tags, case-folded."""
    text = subject
    while True:
        stripped = _LIST_TAG.sub("", _REPLY_PREFIX.sub("", text))
        if stripped == text:
            break
        text = stripped
    return _SPACES.sub(" ", text).strip().casefold()


def looks_like_reply(subject: str) -> bool:
    return _REPLY_PREFIX.match(_LIST_TAG.sub("", subject)) is not None


def may_join_by_subject(message: MailMessage) -> bool:
    """Whether rule 3 applies: a dated message with a subject and without parents."""
    return bool(
        subject_key(message.subject) and message.date is not None and not parent_ids(message)
    )


def loose_keys(message: MailMessage) -> tuple[list[str], list[str]]:
    """What the message adds to a thread's `loose_subject_keys` and `loose_reply_subject_keys`."""
    key = subject_key(message.subject)
    if not key or parent_ids(message):
        return [], []
    return [key], [key] if looks_like_reply(message.subject) else []


def parent_ids(message: MailMessage) -> list[str]:
    """`In-Reply-To` then `References`, without repeats and without the message itself."""
    ordered = dict.fromkeys([*message.in_reply_to, *message.references])
    ordered.pop(message.message_id, None)
    return list(ordered)


def provider_key(message: MailMessage) -> str | None:
    if not message.provider_thread_id:
        return None
    return f"{message.mailbox_id}:{message.provider_thread_id}"


class ThreadLookup(Protocol):
    """The reads threading needs; implemented over the workspace's collections."""

    async def thread(self, thread_id: str) -> ThreadDocument | None: ...

    async def threads_listing(self, message_ids: Sequence[str]) -> list[ThreadDocument]:
        """Threads whose `message_ids` contain one of `message_ids`."""
        ...

    async def thread_with_provider_key(self, key: str) -> ThreadDocument | None: ...

    async def threads_with_subject(
        self, key: str, around: datetime, window: timedelta
    ) -> list[ThreadDocument]:
        """Threads with subject key `key` whose messages lie within `window` of `around`."""
        ...


@dataclass(frozen=True)
class ThreadChoice:
    """The thread for a message (None: start a new one) and the threads merged into it."""

    thread_id: str | None
    rule: ThreadRule
    merge: tuple[str, ...] = field(default=())


def aware(moment: datetime) -> datetime:
    """Mail dates without a zone are taken as UTC, so every comparison is between aware times."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_LATEST = datetime.max.replace(tzinfo=UTC)


def _merge_target(threads: Sequence[ThreadDocument]) -> ThreadDocument:
    def rank(thread: ThreadDocument) -> tuple[bool, datetime, str]:
        first = aware(thread.first_message_at) if thread.first_message_at else _LATEST
        return (not thread.manually_linked, first, thread.id)

    return min(threads, key=rank)


def _within_window(thread: ThreadDocument, moment: datetime) -> bool:
    if thread.first_message_at is None or thread.last_message_at is None:
        return False
    return (
        aware(thread.first_message_at) - SUBJECT_WINDOW
        <= moment
        <= aware(thread.last_message_at) + SUBJECT_WINDOW
    )


def _outside_parties(addresses: Iterable[str], owner: str) -> set[str]:
    """The addresses that are neither the owner nor colleagues at the owner's own domain
    (a free-mail domain has no colleagues: its other users are outside parties)."""
    own_domain = domain_of(owner)
    internal = own_domain not in free_mail_domains()
    return {
        address
        for address in (a.lower() for a in addresses)
        if address != owner and not (internal and domain_of(address) == own_domain)
    }


def _shares_participant(thread: ThreadDocument, message: MailMessage) -> bool:
    owner = message.owner_address.lower()
    others = _outside_parties((p.address for p in message.participants()), owner)
    return bool(others & set(thread.participants))


def _loose_match(thread: ThreadDocument, message: MailMessage, key: str) -> bool:
    """A loose message of the thread with this subject that pairs with `message` (one of the
    two reply-like). Threads written before the loose keys were kept offer their subject."""
    if looks_like_reply(message.subject):
        loose = thread.loose_subject_keys or ([thread.subject_key] if thread.subject_key else [])
        return key in loose
    return key in thread.loose_reply_subject_keys


async def _by_subject(message: MailMessage, lookup: ThreadLookup) -> list[ThreadDocument]:
    if not may_join_by_subject(message) or message.date is None:
        return []
    around = aware(message.date)
    key = subject_key(message.subject)
    return [
        thread
        for thread in await lookup.threads_with_subject(key, around, SUBJECT_WINDOW)
        if _loose_match(thread, message, key)
        and _within_window(thread, around)
        and _shares_participant(thread, message)
    ]


async def choose_thread(
    message: MailMessage, lookup: ThreadLookup, *, replied_thread_id: str | None = None
) -> ThreadChoice:
    """Apply the rules in the module docstring to one message."""
    parents = parent_ids(message)
    replied: list[ThreadDocument] = []
    if replied_thread_id is not None:
        thread = await lookup.thread(replied_thread_id)
        replied = [thread] if thread is not None else []
    by_headers = await lookup.threads_listing([message.message_id, *parents])
    key = provider_key(message)
    by_provider = await lookup.thread_with_provider_key(key) if key is not None else None
    by_subject = await _by_subject(message, lookup)
    found = [*replied, *by_headers, *([by_provider] if by_provider else []), *by_subject]
    unique = list({thread.id: thread for thread in found}.values())
    if not unique:
        return ThreadChoice(None, "new")
    target = _merge_target(unique)
    rule: ThreadRule
    if replied and not by_headers and replied[0].id == target.id and len(unique) == 1:
        rule = "send_request"
    elif replied or by_headers:
        rule = "headers"
    elif by_provider is not None:
        rule = "provider_thread"
    else:
        rule = "subject"
    merge = tuple(sorted(thread.id for thread in unique if thread.id != target.id))
    return ThreadChoice(target.id, rule, merge)
