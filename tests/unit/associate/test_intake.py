"""Captured and sent messages handed to the batches: what a delivery's outcome is."""

import pytest

from mailsync_associate.batch_logbook import BatchLogbook
from mailsync_associate.intake import Intake
from mailsync_shared.contracts.envelope import Event
from mailsync_shared.contracts.mail import CapturedMessage, MailMessage, MessageCaptured
from mailsync_shared.contracts.outbound import EmailSent, SentEmail
from tests.unit.associate.memory import MemoryBatches, Published, SendRequests, mail


class Retried:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)


def captured(workspace_id: str, message: MailMessage) -> MessageCaptured:
    return MessageCaptured.create(
        source="/test", workspace_id=workspace_id, data=CapturedMessage(message=message)
    )


def intake() -> tuple[Intake, MemoryBatches, Published, SendRequests, Retried]:
    batches, published, requests, retried = MemoryBatches(), Published(), SendRequests(), Retried()
    return (
        Intake(
            BatchLogbook(batches, published.publish_each), requests.complete, retried, batch_size=2
        ),
        batches,
        published,
        requests,
        retried,
    )


async def test_a_delivery_of_several_workspaces_is_logged_in_batches_of_each() -> None:
    work, batches, published, _, retried = intake()
    events = [captured("w1", mail("a")), captured("w2", mail("b")), captured("w1", mail("c"))]

    await work.log_captured(events)

    assert [m for m, _ in batches["w1"].logged] == ["<a@client.test>", "<c@client.test>"]
    assert [m for m, _ in batches["w2"].logged] == ["<b@client.test>"]
    assert sorted(published.message_ids()) == [
        "<a@client.test>",
        "<b@client.test>",
        "<c@client.test>",
    ]
    assert retried.events == []


async def test_the_failed_messages_of_a_delivery_are_retried_alone() -> None:
    work, batches, published, _, retried = intake()
    batches["w1"].failing = {"<b@client.test>": ValueError("unreadable")}
    events = [captured("w1", mail(name)) for name in ("a", "b", "c")]

    await work.log_captured(events)

    assert retried.events == [events[1]]
    assert published.message_ids() == ["<a@client.test>", "<c@client.test>"]


async def test_a_delivery_whose_messages_all_fail_raises_for_redelivery() -> None:
    work, batches, _, _, retried = intake()
    batches["w1"].failing = {"<a@client.test>": ValueError("unreadable")}

    with pytest.raises(ValueError, match="unreadable"):
        await work.log_captured([captured("w1", mail("a"))])
    assert retried.events == []


async def test_sent_mail_is_completed_and_logged_on_the_thread_it_replies_on() -> None:
    work, batches, published, requests, _ = intake()
    sent = EmailSent.create(
        source="/test",
        workspace_id="w1",
        data=SentEmail(send_request_id="sr-1", thread_id="t-9", message=mail("s")),
    )

    await work.log_sent(sent)

    assert requests.asked == [("w1", "<s@client.test>", "sr-1")]
    assert batches["w1"].logged == [("<s@client.test>", "t-9")]
    stored = batches["w1"].stored["<s@client.test>"]
    assert stored.direction == "sent"
    assert published.message_ids() == ["<s@client.test>"]


async def test_sent_mail_that_cannot_be_logged_fails_its_delivery() -> None:
    work, batches, _, _, _ = intake()
    batches["w1"].failing = {"<s@client.test>": LookupError("thread vanished")}
    sent = EmailSent.create(
        source="/test",
        workspace_id="w1",
        data=SentEmail(send_request_id="sr-1", thread_id=None, message=mail("s")),
    )

    with pytest.raises(LookupError):
        await work.log_sent(sent)
