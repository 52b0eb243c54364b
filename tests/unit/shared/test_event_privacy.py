"""Public events carry what the mailbox's visibility publishes, and every field is classified."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailsync_shared.contracts.envelope import Event
from mailsync_shared.contracts.mail import Address, MailMessage
from mailsync_shared.contracts.outbound import EmailSendFailed, EmailSent, SendFailure, SentEmail
from mailsync_shared.contracts.records import (
    AssociatedThread,
    CapturedContactDetails,
    ContactCaptured,
    EmailLogged,
    LinkReason,
    LoggedEmail,
    ThreadAssociated,
)
from mailsync_shared.event_privacy import (
    EVENT_FIELDS,
    LEVELS,
    event_level,
    event_paths,
    public_copy,
    render_markdown,
    summary,
)
from mailsync_shared.storage.documents import Visibility
from mailsync_shared.topology import PUBLIC_EVENTS

DOC = Path(__file__).resolve().parents[3] / "docs" / "event-visibility.md"
SUBJECT = "Canary subject 7f3a"
BCC = "canary-bcc-7f3a@hidden.test"
PARTICIPANT = "canary-to-7f3a@client.test"
MESSAGE_ID = "<canary-7f3a@client.test>"
AT = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)


def message() -> MailMessage:
    return MailMessage(
        mailbox_id="m1",
        owner_address="olga@acme.test",
        direction="sent",
        raw_id="r1",
        size=120,
        message_id=MESSAGE_ID,
        subject=SUBJECT,
        date=AT,
        from_=Address(address="olga@acme.test"),
        to=[Address(address=PARTICIPANT, name="Ann")],
        bcc=[Address(address=BCC)],
    )


def samples() -> list[Event]:
    def make(event_type: type[Event], data: object) -> Event:
        return event_type.create(source="/test", workspace_id="w1", data=data)

    return [
        make(
            EmailLogged,
            LoggedEmail(
                email_id="e1",
                thread_id="t1",
                mailbox_id="m1",
                message_id=MESSAGE_ID,
                direction="received",
                subject=SUBJECT,
                date=AT,
                participants=[Address(address=PARTICIPANT)],
            ),
        ),
        make(
            ThreadAssociated,
            AssociatedThread(
                thread_id="t1",
                contact_ids=["c1"],
                company_ids=[],
                deal_ids=[],
                reasons=[
                    LinkReason(
                        record_type="contact",
                        record_id="c1",
                        reason=f"{BCC} is an address of contact Ann (c1)",
                    )
                ],
            ),
        ),
        make(
            ContactCaptured,
            CapturedContactDetails(
                contact_id="c1",
                address="ann@client.test",
                name="Ann",
                rule="sent",
                mailbox_id="m1",
                message_id=MESSAGE_ID,
            ),
        ),
        make(EmailSent, SentEmail(send_request_id="s1", thread_id="t1", message=message())),
        make(
            EmailSendFailed,
            SendFailure(
                send_request_id="s1",
                mailbox_id="m1",
                reason=f"550 5.1.1 <{BCC}>: Recipient address rejected",
                permanent=True,
            ),
        ),
    ]


def test_every_field_of_every_public_event_is_classified() -> None:
    assert set(EVENT_FIELDS) == set(PUBLIC_EVENTS), "public events without a classification"
    for event_type, table in EVENT_FIELDS.items():
        paths = set(event_paths(event_type))
        assert paths - set(table) == set(), f"unclassified fields of {event_type.event_type}"
        assert set(table) - paths == set(), f"classified fields that {event_type} lacks"
    assert {type(event) for event in samples()} == set(PUBLIC_EVENTS)


@pytest.mark.parametrize("level", LEVELS)
def test_no_event_carries_bcc_or_an_address_in_free_text(level: Visibility) -> None:
    for event in samples():
        published = public_copy(event, level).model_dump_json(by_alias=True)
        assert BCC not in published, (event.type, level)
        assert "hidden.test" not in published, (event.type, level)


@pytest.mark.parametrize("level", LEVELS)
def test_the_subject_is_published_only_for_workspace_mail(level: Visibility) -> None:
    for event in samples():
        published = public_copy(event, level).model_dump_json(by_alias=True)
        assert (SUBJECT in published) == (
            level == "workspace" and type(event) in (EmailLogged, EmailSent)
        ), (event.type, level)


@pytest.mark.parametrize("level", LEVELS)
def test_private_mail_publishes_ids_only(level: Visibility) -> None:
    for event in samples():
        published = public_copy(event, level)
        text = published.model_dump_json(by_alias=True)
        mail_facts = (PARTICIPANT in text, MESSAGE_ID in text, AT.isoformat()[:10] in text)
        if level == "private":
            assert mail_facts == (False, False, False), event.type
        elif type(event) in (EmailLogged, EmailSent):
            assert mail_facts == (True, True, True), (event.type, level)
        assert type(published).model_validate_json(text) == published


def test_a_private_thread_or_an_unknown_mailbox_publishes_as_private() -> None:
    assert event_level("workspace", private_thread=True) == "private"
    assert event_level(None) == "private"
    assert event_level("subject") == "subject"


def test_event_visibility_document_matches_the_table() -> None:
    expected = render_markdown()
    current = DOC.read_text() if DOC.exists() else ""
    if current != expected:
        DOC.write_text(expected)
    assert current == expected, f"{DOC} was stale and has been regenerated; review and keep it"
    assert "docs/event-visibility.md" in summary()


def test_the_classified_sample_round_trips_through_json() -> None:
    for event in samples():
        for level in LEVELS:
            body = json.loads(public_copy(event, level).model_dump_json(by_alias=True))
            assert body["type"] == event.type


def test_participants_leave_out_bcc_when_asked() -> None:
    with_bcc = [a.address for a in message().participants()]
    without = [a.address for a in message().participants(bcc=False)]

    assert BCC in with_bcc
    assert without == ["olga@acme.test", PARTICIPANT]
