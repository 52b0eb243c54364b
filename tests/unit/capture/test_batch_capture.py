"""Capturing a batch: which participants become contacts, what is recorded and announced, and
each message's outcome, over in-memory stand-ins for the store and the broker."""

import uuid
from datetime import UTC, datetime
from typing import Any

from mailsync_capture.batch_capture import BatchCapture
from mailsync_shared.capture_policy.repository import captured_contact_id
from mailsync_shared.capture_policy.rules import free_mail_domains
from mailsync_shared.contracts.mail import MailMessage, MessageCaptured, MessageFetched
from mailsync_shared.contracts.records import ContactCaptured
from mailsync_shared.storage.capture_rules import CaptureRulesDocument
from mailsync_shared.storage.documents import ContactDocument
from tests.unit.capture.memory import (
    MemoryCaptureSource,
    MemoryPublisher,
    MemoryWorkspace,
    MemoryWorkspaces,
)

WS = "ws-capture"
OWNER = "owner@acme.test"
MAILBOX = "mb-owner"
CAPTURED = MessageCaptured.model_fields["type"].default
CONTACT_CAPTURED = ContactCaptured.model_fields["type"].default


def fetched(**fields: Any) -> MessageFetched:
    unique = uuid.uuid4().hex[:12]
    data: dict[str, Any] = {
        "mailbox_id": MAILBOX,
        "owner_address": OWNER,
        "direction": "sent",
        "raw_id": f"raw-{unique}",
        "size": 1200,
        "message_id": f"<{unique}@acme.test>",
        "from": {"address": OWNER, "name": "Owner"},
        "to": [{"address": "ann@client.test", "name": "Ann Client"}],
        **fields,
    }
    return MessageFetched.create(
        source="/test", workspace_id=WS, data=MailMessage.model_validate(data)
    )


def rules(**switches: Any) -> CaptureRulesDocument:
    return CaptureRulesDocument(id=WS, workspace_id=WS, **switches)


def capture_with(
    source: MemoryCaptureSource,
    publisher: MemoryPublisher | None = None,
    mailboxes: dict[str, dict[str, Any]] | None = None,
) -> tuple[BatchCapture, MemoryWorkspace, MemoryPublisher]:
    workspace = MemoryWorkspace(source, mailboxes or {MAILBOX: {"visibility": "workspace"}})
    publisher = publisher or MemoryPublisher()
    capture = BatchCapture(MemoryWorkspaces(workspace), publisher, free_mail_domains())
    return capture, workspace, publisher


async def test_the_rules_decide_each_participant_and_record_why() -> None:
    source = MemoryCaptureSource(WS, rules=rules(policy="sent", create_companies=True))
    capture, _, publisher = capture_with(source)
    message = fetched(
        to=[
            {"address": "ann@client.test", "name": "Ann Client"},
            {"address": "noreply@client.test"},
            {"address": "pal@gmail.com"},
            {"address": "colleague@acme.test"},
        ]
    )

    assert await capture.capture(WS, [message]) == [None]

    assert source.decided(message.data.message_id) == {
        "ann@client.test": ("captured", "policy_sent"),
        "noreply@client.test": ("skipped", "role_address"),
        "pal@gmail.com": ("skipped", "free_mail_domain"),
        "colleague@acme.test": ("skipped", "internal_domain"),
        OWNER: ("skipped", "owner_address"),
    }
    [ann] = source.contacts.values()
    assert (ann.name, ann.emails, ann.source) == ("Ann Client", ["ann@client.test"], "capture")
    assert [c.name for c in source.companies.values()] == ["client.test"]
    assert ann.company_id == next(iter(source.companies))
    [announced] = publisher.of_type(CONTACT_CAPTURED)
    assert announced.model_dump()["data"]["address"] == "ann@client.test"
    [passed_on] = publisher.of_type(CAPTURED)
    assert passed_on.model_dump()["data"]["contacts"] == [
        {"contact_id": ann.id, "address": "ann@client.test"}
    ]


async def test_received_mail_is_skipped_under_the_sent_policy() -> None:
    source = MemoryCaptureSource(WS, rules=rules(policy="sent"))
    capture, _, publisher = capture_with(source)
    message = fetched(
        direction="received",
        **{"from": {"address": "bob@client.test"}},
        to=[{"address": OWNER}],
    )

    assert await capture.capture(WS, [message]) == [None]

    assert source.decided(message.data.message_id)["bob@client.test"] == (
        "skipped",
        "policy_sent_only",
    )
    assert source.contacts == {}
    assert publisher.of_type(CONTACT_CAPTURED) == []
    assert len(publisher.of_type(CAPTURED)) == 1, "passed on even without new contacts"


async def test_a_batch_decides_as_one_message_after_another_reading_once() -> None:
    source = MemoryCaptureSource(WS, rules=rules(policy="sent"))
    capture, _, publisher = capture_with(source)
    messages = [fetched(to=[{"address": "dana@newco.test", "name": "Dana"}]) for _ in range(4)]

    assert await capture.capture(WS, messages) == [None] * 4

    outcomes = [source.decided(m.data.message_id)["dana@newco.test"][0] for m in messages]
    assert outcomes == ["captured", "existing", "existing", "existing"]
    assert [c.emails for c in source.contacts.values()] == [["dana@newco.test"]]
    assert source.calls["contacts_with"] == 1, "the batch's contacts are read once"
    assert source.calls["rules"] == 1
    assert source.calls["record_decisions"] == 1, "the decisions are written together"
    [together] = publisher.together
    assert [e.model_dump()["data"]["message"]["message_id"] for e in together] == [
        m.data.message_id for m in messages
    ], "passed on in delivery order"


async def test_a_repeated_delivery_reports_the_contact_again_without_a_second_one() -> None:
    source = MemoryCaptureSource(WS, rules=rules(policy="sent"))
    capture, _, publisher = capture_with(source)
    message = fetched()

    await capture.capture(WS, [message])
    await capture.capture(WS, [message])

    assert len(source.contacts) == 1
    first, again = publisher.of_type(CONTACT_CAPTURED)
    assert first.id == again.id, "the same event id, so consumers deduplicate it"
    assert source.decided(message.data.message_id)["ann@client.test"][0] == "captured"


async def test_a_retracted_contact_is_reinstated_not_created_twice() -> None:
    source = MemoryCaptureSource(WS, rules=rules(policy="sent"))
    contact_id = captured_contact_id(WS, "ann@client.test")
    source.contacts[contact_id] = ContactDocument(
        id=contact_id,
        workspace_id=WS,
        emails=["ann@client.test"],
        source="capture",
        captured_message_id="<old@acme.test>",
        retracted_at=datetime(2026, 1, 1, tzinfo=UTC),
    )
    capture, _, publisher = capture_with(source)
    message = fetched()

    await capture.capture(WS, [message])

    [ann] = source.contacts.values()
    assert ann.retracted_at is None
    assert ann.captured_message_id == message.data.message_id
    assert source.calls["create_contact"] == 0
    assert len(publisher.of_type(CONTACT_CAPTURED)) == 1


async def test_messages_of_a_stopped_mailbox_are_dropped_with_their_bytes() -> None:
    source = MemoryCaptureSource(WS, rules=rules(policy="sent"))
    capture, workspace, publisher = capture_with(
        source,
        mailboxes={
            MAILBOX: {"visibility": "workspace"},
            "mb-gone": {"status": {"state": "disconnected"}},
        },
    )
    kept, gone = fetched(), fetched(mailbox_id="mb-gone")

    assert await capture.capture(WS, [gone, kept]) == [None, None]

    assert workspace.dropped_raw == [gone.data.raw_id]
    assert source.decided(gone.data.message_id) == {}
    [passed_on] = publisher.of_type(CAPTURED)
    assert passed_on.model_dump()["data"]["message"]["message_id"] == kept.data.message_id


async def test_a_message_that_fails_fails_alone() -> None:
    source = MemoryCaptureSource(WS, rules=rules(policy="sent"), broken=["bad@client.test"])
    capture, _, publisher = capture_with(source)
    first, bad, last = fetched(), fetched(to=[{"address": "bad@client.test"}]), fetched()

    outcomes = await capture.capture(WS, [first, bad, last])

    assert outcomes[0] is None
    assert outcomes[2] is None
    assert isinstance(outcomes[1], ConnectionError)
    assert [e.model_dump()["data"]["message"]["message_id"] for e in publisher.together[0]] == [
        first.data.message_id,
        last.data.message_id,
    ]
    assert source.decided(last.data.message_id), "the others' decisions are written"


async def test_a_contact_event_not_published_fails_its_message() -> None:
    source = MemoryCaptureSource(WS, rules=rules(policy="sent"))
    capture, _, publisher = capture_with(source, MemoryPublisher(failing=[CONTACT_CAPTURED]))
    message = fetched()

    [outcome] = await capture.capture(WS, [message])

    assert isinstance(outcome, ConnectionError)
    assert publisher.together == [[]], "not passed on before its contact was announced"


async def test_the_messages_not_passed_on_fail_together() -> None:
    source = MemoryCaptureSource(WS, rules=rules(policy="sent"))
    capture, _, _ = capture_with(source, MemoryPublisher(failing=[CAPTURED]))

    outcomes = await capture.capture(WS, [fetched(), fetched()])

    assert all(isinstance(outcome, ConnectionError) for outcome in outcomes)


async def test_contact_events_carry_what_the_mailbox_visibility_allows() -> None:
    source = MemoryCaptureSource(WS, rules=rules(policy="sent"))
    capture, _, publisher = capture_with(source, mailboxes={MAILBOX: {"visibility": "private"}})

    await capture.capture(WS, [fetched()])

    [(_, level)] = publisher.published
    assert level == "private"
