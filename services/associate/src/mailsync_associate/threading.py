"""Which thread a message belongs to.

Mail arrives out of order: a reply can be fetched before the message it answers, two
mailboxes of one workspace see the same conversation, and a message sent through Mailsync
is logged before ingest sees its copy in the Sent folder. The rules, strongest first:

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

2. **Provider thread id.** Without any header match, a provider thread id (Gmail's
   `X-GM-THRID`) picks the thread that already has it. Provider ids are per mailbox, so
   they are stored as `<mailbox_id>:<id>`.

3. **Subject, guarded.** Only for a message that looks like a reply or forward (a
   `Re:`/`Fwd:` prefix, or parents that matched nothing), a thread with the same
   normalized subject is taken when it also shares an outside party: a participant other
   than the mailbox owner (who is on every thread of their mailbox) and the owner's
   colleagues at the same domain (a forward to a colleague is not the client conversation
   with the same subject), and its messages lie within
   30 days of this one. Subjects like "Invoice" recur between the same people, so a
   message without reply markers never joins a thread by subject alone.

4. Otherwise the message starts a new thread.

```
 message ──parents/own id match?──yes──▶ that thread (merge when several)
    │ no
    ├──provider thread known?──yes──▶ that thread
    │ no
    ├──reply-like, same subject, shared participant, within 30 days?──yes──▶ that thread
    │ no
    └──▶ new thread
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
    """Whether rule 3 applies: a dated reply or forward (by prefix, or by its parents)."""
    return bool(
        subject_key(message.subject)
        and message.date is not None
        and (parent_ids(message) or looks_like_reply(message.subject))
    )


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
_EARLIEST = datetime.min.replace(tzinfo=UTC)


def _merge_target(threads: Sequence[ThreadDocument]) -> ThreadDocument:
    def rank(thread: ThreadDocument) -> tuple[bool, datetime, str]:
        first = aware(thread.first_message_at) if thread.first_message_at else _LATEST
        return (not thread.manually_linked, first, thread.id)

    return min(threads, key=rank)


def _most_recent(threads: Sequence[ThreadDocument]) -> ThreadDocument:
    def rank(thread: ThreadDocument) -> tuple[datetime, str]:
        last = aware(thread.last_message_at) if thread.last_message_at else _EARLIEST
        return (last, thread.id)

    return max(threads, key=rank)


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


async def choose_thread(
    message: MailMessage, lookup: ThreadLookup, *, replied_thread_id: str | None = None
) -> ThreadChoice:
    """Apply the rules in the module docstring to one message."""
    parents = parent_ids(message)
    found: list[ThreadDocument] = []
    if replied_thread_id is not None:
        replied = await lookup.thread(replied_thread_id)
        if replied is not None:
            found.append(replied)
    found += await lookup.threads_listing([message.message_id, *parents])
    unique = list({thread.id: thread for thread in found}.values())
    if unique:
        target = _merge_target(unique)
        rule: ThreadRule = (
            "send_request" if replied_thread_id == target.id and len(found) == 1 else "headers"
        )
        merge = tuple(sorted(thread.id for thread in unique if thread.id != target.id))
        return ThreadChoice(target.id, rule, merge)

    key = provider_key(message)
    if key is not None:
        by_provider = await lookup.thread_with_provider_key(key)
        if by_provider is not None:
            return ThreadChoice(by_provider.id, "provider_thread")

    if may_join_by_subject(message) and message.date is not None:
        around = aware(message.date)
        subject = subject_key(message.subject)
        candidates = [
            thread
            for thread in await lookup.threads_with_subject(subject, around, SUBJECT_WINDOW)
            if _within_window(thread, around) and _shares_participant(thread, message)
        ]
        if candidates:
            return ThreadChoice(_most_recent(candidates).id, "subject")

    return ThreadChoice(None, "new")
