"""Visibility: every viewer against every mailbox share, and what redaction leaves readable."""

from datetime import UTC, datetime
from typing import Any

import pytest

from mailsync_shared.contracts.records import LinkReason
from mailsync_shared.storage.documents import MessageDocument, ThreadDocument
from mailsync_shared.visibility import (
    Access,
    MailboxShare,
    Sight,
    Viewer,
    access,
    redact_message,
    redact_thread,
    seen_thread,
    sight,
)

N, M, S, E = Access.NOTHING, Access.METADATA, Access.SUBJECT, Access.EVERYTHING
VISIBILITIES = ("private", "metadata", "subject", "workspace")

ALICE = Viewer("alice")
BOB = Viewer("bob")
CAROL_ADMIN = Viewer("carol", role="admin")
API_KEY = Viewer.api_key()

# (viewer, mailbox owner) -> access per visibility (private, metadata, subject, workspace),
# first for a thread as it is, then for a thread made private.
TABLE: list[tuple[str, Viewer, str | None, tuple[Access, ...], tuple[Access, ...]]] = [
    ("owner sees own mail", ALICE, "alice", (E, E, E, E), (E, E, E, E)),
    ("colleague sees what is shared", BOB, "alice", (N, M, S, E), (N, N, N, N)),
    ("admin role widens nothing", CAROL_ADMIN, "alice", (N, M, S, E), (N, N, N, N)),
    ("api key is not a user's owner", API_KEY, "alice", (N, M, S, E), (N, N, N, N)),
    ("api key owns a mailbox it connected", API_KEY, None, (E, E, E, E), (E, E, E, E)),
    ("user on a key-connected mailbox", ALICE, None, (N, M, S, E), (N, N, N, N)),
]

CASES = [
    pytest.param(viewer, owner, visibility, private, expected[index], id=f"{name}-{visibility}-{p}")
    for name, viewer, owner, as_is, made_private in TABLE
    for private, p, expected in ((False, "open", as_is), (True, "private", made_private))
    for index, visibility in enumerate(VISIBILITIES)
]


@pytest.mark.parametrize(("viewer", "owner", "visibility", "private", "expected"), CASES)
def test_access_for_one_mailbox(
    viewer: Viewer, owner: str | None, visibility: Any, private: bool, expected: Access
) -> None:
    assert access(viewer, [MailboxShare(owner, visibility)], private=private) is expected


@pytest.mark.parametrize(
    ("shares", "private", "expected"),
    [
        ([("alice", "private"), ("dave", "metadata")], False, M),
        ([("alice", "private"), ("dave", "workspace")], False, E),
        ([("alice", "subject"), ("dave", "metadata")], False, S),
        ([("alice", "private"), ("dave", "private")], False, N),
        ([("alice", "workspace"), ("dave", "workspace")], True, N),
        ([("bob", "private"), ("dave", "metadata")], True, E),
        ([], False, N),
    ],
    ids=[
        "most-open-wins-metadata",
        "most-open-wins-workspace",
        "subject-beats-metadata",
        "all-private",
        "private-thread-hides-everything",
        "owner-of-one-copy-sees-private-thread",
        "no-mailbox-no-access",
    ],
)
def test_access_for_mail_seen_in_several_mailboxes(
    shares: list[tuple[str, Any]], private: bool, expected: Access
) -> None:
    mailboxes = [MailboxShare(owner, visibility) for owner, visibility in shares]
    assert access(BOB, mailboxes, private=private) is expected


MESSAGE: dict[str, Any] = {
    "id": "m1",
    "message_id": "<m1@client.test>",
    "thread_id": "t1",
    "direction": "received",
    "from": {"address": "ann@client.test", "name": "Ann"},
    "to": [{"address": "olive@acme.test", "name": ""}],
    "cc": [],
    "subject": "Pricing for 40 seats",
    "date": "2025-01-02T10:00:00Z",
    "body_text": "Could you send pricing?",
    "raw_id": "abc",
    "attachments": [{"name": "offer.pdf"}],
    "size": 1234,
    "mailbox_ids": ["mb1"],
}


def test_nothing_hides_the_message_entirely() -> None:
    assert redact_message(MESSAGE, N) is None


def test_metadata_keeps_participants_and_date_only() -> None:
    redacted = redact_message(MESSAGE, M)
    assert redacted is not None
    assert (redacted["from"], redacted["to"], redacted["date"]) == (
        MESSAGE["from"],
        MESSAGE["to"],
        MESSAGE["date"],
    )
    assert (redacted["subject"], redacted["body_text"], redacted["raw_id"]) == ("", "", "")
    assert (redacted["attachments"], redacted["size"]) == ([], 0), "unknown fields fail closed"
    assert redacted["access"] == "metadata"
    assert set(redacted) == set(MESSAGE) | {"access"}, "keys stay so schemas still validate"


def test_subject_adds_the_subject_but_not_the_body() -> None:
    redacted = redact_message(MESSAGE, S)
    assert redacted is not None
    assert (redacted["subject"], redacted["body_text"]) == ("Pricing for 40 seats", "")


def test_everything_keeps_every_field() -> None:
    redacted = redact_message(MESSAGE, E)
    assert redacted == {**MESSAGE, "access": "everything"}


def test_thread_messages_are_redacted_with_the_thread() -> None:
    thread = {
        "id": "t1",
        "subject": "Pricing for 40 seats",
        "participants": ["ann@client.test"],
        "messages": [MESSAGE, MESSAGE],
    }
    redacted = redact_thread(thread, M)
    assert redacted is not None
    assert redacted["subject"] == ""
    assert [m["body_text"] for m in redacted["messages"]] == ["", ""]
    assert [m["from"] for m in redacted["messages"]] == [MESSAGE["from"]] * 2
    assert redact_thread(thread, N) is None
    full = redact_thread(thread, E)
    assert full is not None
    assert full["messages"][0]["body_text"] == MESSAGE["body_text"]


def test_bcc_is_blanked_at_every_level_unless_the_viewer_sees_it() -> None:
    with_bcc = {**MESSAGE, "bcc": [{"address": "board@acme.test", "name": ""}]}
    for level in (M, S, E):
        redacted = redact_message(with_bcc, level)
        assert redacted is not None
        assert redacted["bcc"] == [], level
    shown = redact_message(with_bcc, E, bcc=True)
    assert shown is not None
    assert shown["bcc"] == with_bcc["bcc"]


@pytest.mark.parametrize(
    ("viewer", "owner", "visibility", "expected"),
    [
        (ALICE, "alice", "private", Sight(E, bcc=True)),
        (BOB, "alice", "workspace", Sight(E, bcc=False)),
        (BOB, "alice", "metadata", Sight(M, bcc=False)),
        (API_KEY, None, "private", Sight(E, bcc=True)),
        (CAROL_ADMIN, "alice", "private", Sight(N, bcc=False)),
    ],
)
def test_bcc_is_seen_by_the_mailboxs_owner_only(
    viewer: Viewer, owner: str | None, visibility: Any, expected: Sight
) -> None:
    assert sight(viewer, [MailboxShare(owner, visibility)]) == expected


def _message(n: int, mailbox: str, **fields: Any) -> MessageDocument:
    return MessageDocument.model_validate(
        {
            "workspace_id": "ws",
            "message_id": f"<m{n}@client.test>",
            "thread_id": "t1",
            "mailbox_ids": [mailbox],
            "direction": "received",
            "from": {"address": f"sender{n}@client.test"},
            "to": [{"address": "olive@acme.test"}],
            "subject": f"subject {n}",
            "date": datetime(2025, 1, n, tzinfo=UTC),
            "raw_id": f"raw{n}",
            **fields,
        }
    )


def test_a_thread_is_what_its_visible_messages_make_it() -> None:
    thread = ThreadDocument(
        workspace_id="ws",
        subject="subject 1",
        participants=["everyone@stored.test"],
        mailbox_ids=["hidden", "shared", "meta"],
        message_count=3,
    )
    first = _message(1, "hidden", bcc=[{"address": "bcc1@client.test"}])
    second = _message(2, "meta")
    third = _message(3, "shared", bcc=[{"address": "bcc3@client.test"}])
    sights = [Sight(N), Sight(M), Sight(S)]

    seen = seen_thread(thread, list(zip([first, second, third], sights, strict=True)))

    assert seen is not None
    shown, level = seen
    assert level is S
    assert shown.subject == "subject 3", "the oldest message seen with its subject"
    assert shown.participants == [
        "sender2@client.test",
        "olive@acme.test",
        "sender3@client.test",
    ]
    assert (shown.message_count, shown.mailbox_ids) == (2, ["meta", "shared"])
    assert (shown.first_message_at, shown.last_message_at) == (second.date, third.date)
    owner_view = seen_thread(thread, [(first, Sight(E, bcc=True)), (second, Sight(M))])
    assert owner_view is not None
    assert "bcc1@client.test" in owner_view[0].participants
    assert seen_thread(thread, [(first, Sight(N))]) is None
    linked = thread.model_copy(
        update={
            "link_reasons": [
                LinkReason(
                    record_type="contact",
                    record_id="c1",
                    reason="bcc1@client.test is an address of contact Board (c1); "
                    "sender2@client.test wrote",
                )
            ]
        }
    )
    seen_linked = seen_thread(linked, [(second, Sight(M))])
    assert seen_linked is not None
    (reason,) = seen_linked[0].link_reasons
    assert (
        reason.reason == "[address] is an address of contact Board (c1); sender2@client.test wrote"
    )
    metadata_only = seen_thread(thread, [(second, Sight(M))])
    assert metadata_only is not None
    assert metadata_only[0].subject == ""
