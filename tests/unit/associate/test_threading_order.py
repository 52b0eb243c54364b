"""Threads do not depend on the order messages are processed in.

A corpus of several conversations (headers, header-less replies, a reply whose parent is never
seen, provider thread ids, recurring subjects that must stay apart, a second copy of one
message) is threaded in every order hypothesis draws, over an in-memory store that keeps
threads the way the repository does (`with_message`, merges joining lists). The resulting
partition of `Message-ID`s must always be the one written down.
"""

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from mailsync_associate.repository import GROWING_LISTS, grown, with_message
from mailsync_associate.threading import aware, choose_thread, subject_key
from mailsync_shared.contracts.mail import MailMessage
from mailsync_shared.storage.documents import ThreadDocument

OWNER = "owner@acme.test"
T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def mail(
    message_id: str,
    subject: str,
    hours: float,
    *,
    sender: str = "ann@client.test",
    to: str = OWNER,
    parents: Sequence[str] = (),
    provider: str | None = None,
) -> MailMessage:
    return MailMessage.model_validate(
        {
            "mailbox_id": "mb1",
            "owner_address": OWNER,
            "direction": "sent" if sender == OWNER else "received",
            "raw_id": "raw",
            "size": 1,
            "message_id": f"<{message_id}@x>",
            "in_reply_to": [f"<{parents[-1]}@x>"] if parents else [],
            "references": [f"<{p}@x>" for p in parents],
            "subject": subject,
            "date": T0 + timedelta(hours=hours),
            "from": {"address": sender},
            "to": [{"address": to}],
            "provider_thread_id": provider,
        }
    )


CORPUS = [
    # Headers: original, then replies that name it.
    mail("a0", "Proposal", 0),
    mail("a1", "Re: Proposal", 2, sender=OWNER, to="ann@client.test", parents=["a0"]),
    mail("a2", "Re: Proposal", 5, parents=["a0", "a1"]),
    # No headers at all: the subject fallback, with replies on both sides.
    mail("b0", "Budget", 24),
    mail("b1", "RE: Budget", 26, sender=OWNER, to="ann@client.test"),
    mail("b2", "Re: Budget", 30),
    # A parent never seen: joined through the id both replies mention.
    mail("c1", "Re: Kickoff", 40, parents=["c-missing"]),
    mail("c2", "Re: Kickoff", 41, sender=OWNER, to="ann@client.test", parents=["c-missing", "c1"]),
    # One provider thread, subjects changed along the way.
    mail("d0", "Visit", 50, sender="ben@client.test", provider="g1"),
    mail("d1", "Visit moved", 51, sender=OWNER, to="ben@client.test", provider="g1"),
    # The same subject with somebody else: its own conversation.
    mail("e0", "Proposal", 1, sender="carl@other.test"),
    mail("e1", "Re: Proposal", 3, sender=OWNER, to="carl@other.test"),
    # Recurring subject without reply markers: never joined.
    mail("f0", "Invoice", 60, sender="ben@client.test"),
    mail("f1", "Invoice", 90, sender="ben@client.test"),
    # Headers and a header-less reply in one conversation.
    mail("g0", "Plan", 100),
    mail("g1", "Re: Plan", 101, sender=OWNER, to="ann@client.test", parents=["g0"]),
    mail("g2", "Re: Plan", 103),
    # A second copy of a message (another folder): logged once.
    mail("b1", "RE: Budget", 26, sender=OWNER, to="ann@client.test"),
]

EXPECTED = {
    frozenset({"a0", "a1", "a2"}),
    frozenset({"b0", "b1", "b2"}),
    frozenset({"c1", "c2"}),
    frozenset({"d0", "d1"}),
    frozenset({"e0", "e1"}),
    frozenset({"f0"}),
    frozenset({"f1"}),
    frozenset({"g0", "g1", "g2"}),
}


class MemoryThreads:
    """Threads kept as the repository keeps them, answering `ThreadLookup`."""

    def __init__(self) -> None:
        self.threads: dict[str, ThreadDocument] = {}
        self.logged: dict[str, str] = {}

    async def thread(self, thread_id: str) -> ThreadDocument | None:
        return self.threads.get(thread_id)

    async def threads_listing(self, message_ids: Sequence[str]) -> list[ThreadDocument]:
        return [t for t in self.threads.values() if set(t.message_ids) & set(message_ids)]

    async def thread_with_provider_key(self, key: str) -> ThreadDocument | None:
        return next((t for t in self.threads.values() if key in t.provider_thread_ids), None)

    async def threads_with_subject(
        self, key: str, around: datetime, window: timedelta
    ) -> list[ThreadDocument]:
        return [
            t for t in self.threads.values() if t.subject_key == key or key in t.loose_subject_keys
        ]

    async def log(self, message: MailMessage) -> None:
        if message.message_id in self.logged:
            return
        choice = await choose_thread(message, self)
        thread_id = choice.thread_id or f"t-{message.message_id}"
        thread = self.threads.get(thread_id) or ThreadDocument(
            id=thread_id,
            workspace_id="ws",
            subject=message.subject,
            subject_key=subject_key(message.subject),
        )
        for merged_id in choice.merge:
            merged = self.threads.pop(merged_id)
            thread = grown(thread, **{name: getattr(merged, name) for name in GROWING_LISTS})
            thread = thread.model_copy(
                update={
                    "first_message_at": min(
                        d for d in (thread.first_message_at, merged.first_message_at) if d
                    ),
                    "last_message_at": max(
                        d for d in (thread.last_message_at, merged.last_message_at) if d
                    ),
                }
            )
        assert message.date is not None
        self.threads[thread_id] = with_message(thread, message, aware(message.date))

    def partition(self) -> set[frozenset[str]]:
        return {
            frozenset(m.strip("<>").removesuffix("@x") for m in t.logged_message_ids)
            for t in self.threads.values()
        }


async def threaded(order: Sequence[MailMessage]) -> set[frozenset[str]]:
    store = MemoryThreads()
    for message in order:
        await store.log(message)
    return store.partition()


def test_the_corpus_in_written_order_gives_the_expected_threads() -> None:
    assert asyncio.run(threaded(CORPUS)) == EXPECTED


def test_newest_first_as_a_backfill_runs_gives_the_same_threads() -> None:
    newest_first = sorted(CORPUS, key=lambda m: m.date or T0, reverse=True)
    assert asyncio.run(threaded(newest_first)) == EXPECTED


@settings(max_examples=300, deadline=None)
@given(st.permutations(CORPUS))
def test_any_processing_order_gives_the_same_threads(order: list[MailMessage]) -> None:
    assert asyncio.run(threaded(order)) == EXPECTED
