"""Visibility: every viewer against every mailbox share, and what redaction leaves readable."""

from typing import Any

import pytest

from mailsync_shared.visibility import (
    Access,
    MailboxShare,
    Viewer,
    access,
    redact_message,
    redact_thread,
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
