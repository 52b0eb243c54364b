"""Threading decisions against an in-memory view of stored messages and threads."""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mailsync_associate.threading import (
    choose_thread,
    looks_like_reply,
    parent_ids,
    subject_key,
)
from mailsync_shared.contracts.mail import MailMessage
from mailsync_shared.storage.documents import ThreadDocument

OWNER = "owner@acme.test"
NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class StoredMessage:
    message_id: str
    thread_id: str
    parents: list[str] = field(default_factory=list)


@dataclass
class FakeLookup:
    threads: dict[str, ThreadDocument] = field(default_factory=dict)
    messages: list[StoredMessage] = field(default_factory=list)

    def add_thread(self, thread_id: str, **fields: object) -> ThreadDocument:
        thread = ThreadDocument.model_validate({"_id": thread_id, "workspace_id": "ws", **fields})
        self.threads[thread_id] = thread
        return thread

    async def thread(self, thread_id: str) -> ThreadDocument | None:
        return self.threads.get(thread_id)

    async def threads_listing(self, message_ids: Sequence[str]) -> list[ThreadDocument]:
        return [t for t in self.threads.values() if set(t.message_ids) & set(message_ids)]

    async def thread_with_provider_key(self, key: str) -> ThreadDocument | None:
        return next((t for t in self.threads.values() if key in t.provider_thread_ids), None)

    async def threads_with_subject(
        self, key: str, around: datetime, window: timedelta
    ) -> list[ThreadDocument]:
        # Deliberately ignores the window: the guard must hold in `choose_thread` itself.
        return [t for t in self.threads.values() if t.subject_key == key]


def mail(
    message_id: str,
    *,
    subject: str = "Proposal",
    in_reply_to: Sequence[str] = (),
    references: Sequence[str] = (),
    sender: str = "ann@client.test",
    to: Sequence[str] = (OWNER,),
    date: datetime = NOW,
    provider_thread_id: str | None = None,
) -> MailMessage:
    return MailMessage.model_validate(
        {
            "mailbox_id": "mb1",
            "owner_address": OWNER,
            "direction": "received",
            "raw_id": "raw",
            "size": 1,
            "message_id": message_id,
            "in_reply_to": list(in_reply_to),
            "references": list(references),
            "subject": subject,
            "date": date,
            "from": {"address": sender},
            "to": [{"address": a} for a in to],
            "provider_thread_id": provider_thread_id,
        }
    )


async def test_unrelated_message_starts_a_new_thread() -> None:
    choice = await choose_thread(mail("<a@x>"), FakeLookup())
    assert (choice.thread_id, choice.rule) == (None, "new")


async def test_reply_joins_the_thread_of_its_stored_parent() -> None:
    lookup = FakeLookup(messages=[StoredMessage("<a@x>", "t1")])
    lookup.add_thread("t1", message_ids=["<a@x>"])
    choice = await choose_thread(mail("<b@x>", in_reply_to=["<a@x>"]), lookup)
    assert (choice.thread_id, choice.rule, choice.merge) == ("t1", "headers", ())


async def test_parent_known_only_by_reference_joins_sibling_replies() -> None:
    lookup = FakeLookup()
    lookup.add_thread("t1", message_ids=["<b@x>", "<root@x>"])
    choice = await choose_thread(mail("<c@x>", references=["<root@x>"]), lookup)
    assert choice.thread_id == "t1"


async def test_parent_arriving_after_its_reply_finds_the_reply_thread() -> None:
    lookup = FakeLookup(messages=[StoredMessage("<b@x>", "t1", parents=["<a@x>"])])
    lookup.add_thread("t1", message_ids=["<b@x>", "<a@x>"])
    choice = await choose_thread(mail("<a@x>"), lookup)
    assert (choice.thread_id, choice.rule) == ("t1", "headers")


async def test_message_joining_two_threads_merges_them_into_the_oldest() -> None:
    lookup = FakeLookup(messages=[StoredMessage("<a@x>", "t-new"), StoredMessage("<b@x>", "t-old")])
    lookup.add_thread("t-new", message_ids=["<a@x>"], first_message_at=NOW)
    lookup.add_thread("t-old", message_ids=["<b@x>"], first_message_at=NOW - timedelta(days=2))
    choice = await choose_thread(mail("<c@x>", references=["<a@x>", "<b@x>"]), lookup)
    assert (choice.thread_id, choice.merge) == ("t-old", ("t-new",))


async def test_merge_keeps_the_manually_linked_thread() -> None:
    lookup = FakeLookup(messages=[StoredMessage("<a@x>", "t1"), StoredMessage("<b@x>", "t2")])
    lookup.add_thread("t1", message_ids=["<a@x>"], first_message_at=NOW - timedelta(days=5))
    lookup.add_thread("t2", message_ids=["<b@x>"], first_message_at=NOW, manually_linked=True)
    choice = await choose_thread(mail("<c@x>", references=["<a@x>", "<b@x>"]), lookup)
    assert (choice.thread_id, choice.merge) == ("t2", ("t1",))


async def test_sent_reply_uses_the_thread_the_api_replied_on() -> None:
    lookup = FakeLookup()
    lookup.add_thread("t9", message_ids=["<other@x>"])
    choice = await choose_thread(mail("<s@x>"), lookup, replied_thread_id="t9")
    assert (choice.thread_id, choice.rule) == ("t9", "send_request")


async def test_provider_thread_id_is_used_per_mailbox() -> None:
    lookup = FakeLookup()
    lookup.add_thread("t1", provider_thread_ids=["mb1:777"])
    assert (await choose_thread(mail("<a@x>", provider_thread_id="777"), lookup)).rule == (
        "provider_thread"
    )
    other_mailbox = mail("<b@x>", provider_thread_id="777").model_copy(update={"mailbox_id": "mb2"})
    assert (await choose_thread(other_mailbox, lookup)).rule == "new"


def subject_thread(lookup: FakeLookup, **fields: object) -> None:
    lookup.add_thread(
        "t1",
        **{
            "subject_key": "proposal",
            "participants": [OWNER, "ann@client.test"],
            "first_message_at": NOW - timedelta(days=3),
            "last_message_at": NOW - timedelta(days=1),
            **fields,
        },
    )


async def test_subject_fallback_joins_a_reply_with_a_shared_participant() -> None:
    lookup = FakeLookup()
    subject_thread(lookup)
    choice = await choose_thread(mail("<r@x>", subject="RE: Proposal"), lookup)
    assert (choice.thread_id, choice.rule) == ("t1", "subject")


async def test_subject_fallback_needs_a_participant_besides_the_owner() -> None:
    lookup = FakeLookup()
    subject_thread(lookup)
    stranger = mail("<r@x>", subject="Re: Proposal", sender="zed@other.test")
    assert (await choose_thread(stranger, lookup)).rule == "new"


async def test_subject_fallback_only_within_thirty_days() -> None:
    lookup = FakeLookup()
    subject_thread(lookup)
    late = mail("<r@x>", subject="Re: Proposal", date=NOW + timedelta(days=31))
    assert (await choose_thread(late, lookup)).rule == "new"
    in_time = mail("<r@x>", subject="Re: Proposal", date=NOW + timedelta(days=28))
    assert (await choose_thread(in_time, lookup)).rule == "subject"


async def test_subject_alone_without_reply_markers_never_joins() -> None:
    lookup = FakeLookup()
    subject_thread(lookup)
    assert (await choose_thread(mail("<r@x>", subject="Proposal"), lookup)).rule == "new"


async def test_a_reply_with_parents_is_placed_by_its_headers_only() -> None:
    # Whether a parent is logged yet depends on the processing order, so parents that matched
    # nothing cannot open the subject fallback: the reply waits for its parent's thread.
    lookup = FakeLookup()
    subject_thread(lookup)
    orphan = mail("<r@x>", subject="Re: Proposal", in_reply_to=["<never-seen@x>"])
    assert (await choose_thread(orphan, lookup)).rule == "new"


async def test_an_original_processed_after_its_header_less_reply_joins_it() -> None:
    lookup = FakeLookup()
    subject_thread(lookup, loose_subject_keys=["proposal"], loose_reply_subject_keys=["proposal"])
    original = mail("<o@x>", subject="Proposal", date=NOW - timedelta(days=4))
    assert (await choose_thread(original, lookup)).thread_id == "t1"


async def test_a_header_less_reply_joins_every_thread_it_pairs_with() -> None:
    lookup = FakeLookup()
    subject_thread(lookup, loose_subject_keys=["proposal"])
    lookup.add_thread(
        "t2",
        subject_key="proposal",
        loose_subject_keys=["proposal"],
        participants=[OWNER, "ann@client.test"],
        first_message_at=NOW - timedelta(days=2),
        last_message_at=NOW - timedelta(days=2),
    )
    choice = await choose_thread(mail("<r@x>", subject="Re: Proposal"), lookup)
    assert (choice.thread_id, choice.rule, choice.merge) == ("t1", "subject", ("t2",))


def test_subject_key_strips_prefixes_and_list_tags() -> None:
    assert subject_key("Re: RE: Fwd: [client-list] AW:  The   Plan ") == "the plan"
    assert subject_key("Re[2]: Plan") == "plan"
    assert subject_key("Reply needed") == "reply needed"
    assert looks_like_reply("[list] Re: Plan")
    assert not looks_like_reply("Plan")


def test_parent_ids_drop_repeats_and_self() -> None:
    message = mail("<a@x>", in_reply_to=["<p@x>"], references=["<r@x>", "<p@x>", "<a@x>"])
    assert parent_ids(message) == ["<p@x>", "<r@x>"]
