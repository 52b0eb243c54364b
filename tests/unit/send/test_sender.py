"""The sender's decision tree over in-memory stand-ins: what is sent, deferred, refused,
recovered and never sent twice."""

from datetime import timedelta

import pytest

from mailsync_send.relay import RelayError
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.outbound import EmailSendFailed, EmailSent
from mailsync_shared.messaging import PermanentError
from mailsync_shared.send_outbox import CLAIMS, TIMERS
from mailsync_shared.storage.raw_messages import load_raw
from tests.unit.send.memory import CLIENT, OWNER, SendWorld, send_world

SENT = EmailSent.model_fields["type"].default
FAILED = EmailSendFailed.model_fields["type"].default


@pytest.fixture(name="world")
def world_fixture(monkeypatch: pytest.MonkeyPatch) -> SendWorld:
    return send_world(monkeypatch, max_attempts=3)


async def test_a_queued_request_is_sent_filed_reported_and_recorded(world: SendWorld) -> None:
    mailbox = await world.mailbox()
    request = await world.request(mailbox)

    done = await world.sender.handle(world.store.workspace_id, request.id)

    assert done.result == "sent"
    [relayed] = world.smtp.relayed
    assert relayed.recipients == (CLIENT,)
    assert relayed.envelope_from == OWNER
    assert relayed.account.login.password == "owner-password"
    assert request.message_id.encode() in relayed.data
    assert world.sent_folder.messages == [relayed.data], "the exact bytes are filed in Sent"
    [event] = world.events.of_type(SENT)
    assert event["data"]["send_request_id"] == request.id
    stored = await world.stored(request)
    assert stored.state == "sent"
    assert stored.reported_at is not None
    assert stored.attempts == 1
    assert stored.raw_id is not None
    assert await load_raw(world.store, stored.raw_id) == relayed.data


async def test_a_request_handled_again_is_not_sent_again(world: SendWorld) -> None:
    request = await world.request(await world.mailbox())

    await world.sender.handle(world.store.workspace_id, request.id)
    again = await world.sender.handle(world.store.workspace_id, request.id)

    assert again.result == "already sent"
    assert len(world.smtp.relayed) == 1
    assert len(world.events.of_type(SENT)) == 1


async def test_a_provider_that_files_sent_mail_itself_gets_no_copy(world: SendWorld) -> None:
    request = await world.request(await world.mailbox(append_to_sent=False))

    assert (await world.sender.handle(world.store.workspace_id, request.id)).result == "sent"

    assert world.sent_folder.messages == []


async def test_a_request_due_later_waits_for_the_scheduler(world: SendWorld) -> None:
    send_at = utcnow() + timedelta(hours=2)
    request = await world.request(await world.mailbox(), send_at=send_at)

    done = await world.sender.handle(world.store.workspace_id, request.id)

    assert done.result == "scheduled"
    assert world.smtp.relayed == []
    stored = await world.stored(request)
    assert stored.state == "queued"
    assert stored.next_attempt_at is not None
    assert abs(stored.next_attempt_at - send_at) < timedelta(milliseconds=1)
    timer = await world.store.collection(TIMERS).find_one({"_id": request.id})
    assert timer is not None, "the scheduler's timer is set"


async def test_a_mailbox_over_its_rate_defers_to_the_next_minute(world: SendWorld) -> None:
    mailbox = await world.mailbox(send_rate_per_minute=1)
    first, second = await world.request(mailbox), await world.request(mailbox)

    assert (await world.sender.handle(world.store.workspace_id, first.id)).result == "sent"
    done = await world.sender.handle(world.store.workspace_id, second.id)

    assert done.result == "rate limited"
    assert len(world.smtp.relayed) == 1
    stored = await world.stored(second)
    assert stored.state == "queued"
    assert stored.next_attempt_at is not None
    assert stored.next_attempt_at > utcnow()
    assert stored.next_attempt_at.second == 0, "the next minute's window"


async def test_a_permanent_refusal_fails_the_request_for_good(world: SendWorld) -> None:
    request = await world.request(await world.mailbox())
    world.smtp.failures.append(RelayError("550 5.1.1 no such user", permanent=True))

    done = await world.sender.handle(world.store.workspace_id, request.id)

    assert done.result == "failed"
    stored = await world.stored(request)
    assert stored.state == "failed"
    assert stored.error == "550 5.1.1 no such user"
    [event] = world.events.of_type(FAILED)
    assert event["data"]["permanent"] is True
    assert world.events.of_type(SENT) == []
    again = await world.sender.handle(world.store.workspace_id, request.id)
    assert again.result == "already failed"


async def test_a_transient_failure_is_retried_later_then_sent(world: SendWorld) -> None:
    request = await world.request(await world.mailbox())
    world.smtp.failures.append(RelayError("451 4.3.0 try later", permanent=False))

    done = await world.sender.handle(world.store.workspace_id, request.id)

    assert done.result == "retry scheduled"
    stored = await world.stored(request)
    assert stored.state == "queued"
    assert stored.attempts == 1
    assert stored.data_started_at is None, "failed before DATA: known not delivered"
    assert stored.next_attempt_at is not None
    assert stored.next_attempt_at > utcnow()
    [event] = world.events.of_type(FAILED)
    assert event["data"]["permanent"] is False

    await world.store.send_requests.update_one(
        {"_id": request.id}, {"$set": {"next_attempt_at": utcnow() - timedelta(seconds=1)}}
    )
    assert (await world.sender.handle(world.store.workspace_id, request.id)).result == "sent"
    assert (await world.stored(request)).attempts == 2
    assert len(world.smtp.relayed) == 1


async def test_transient_failures_give_up_after_the_last_attempt(world: SendWorld) -> None:
    request = await world.request(await world.mailbox())
    for _ in range(3):
        world.smtp.failures.append(RelayError("421 busy", permanent=False))
        await world.store.send_requests.update_one(
            {"_id": request.id}, {"$set": {"next_attempt_at": None}}
        )
        done = await world.sender.handle(world.store.workspace_id, request.id)

    assert done.result == "failed"
    stored = await world.stored(request)
    assert stored.attempts == 3
    assert stored.error is not None
    assert stored.error.startswith("gave up after 3 attempts")
    assert world.smtp.relayed == []


async def test_a_connection_lost_during_the_data_is_not_sent_blindly_again(
    world: SendWorld,
) -> None:
    request = await world.request(await world.mailbox())
    world.smtp.failures.append(
        RelayError("connection lost during DATA", permanent=False, ambiguous=True)
    )

    assert (await world.sender.handle(world.store.workspace_id, request.id)).result == (
        "retry scheduled"
    )
    held = await world.stored(request)
    assert held.state == "sending", "released, to be recovered by looking in Sent"
    claim = f"{request.id}:1"
    await world.store.collection(CLAIMS).update_one(
        {"_id": claim}, {"$set": {"claimed_until": utcnow() - timedelta(seconds=1)}}
    )
    await world.store.send_requests.update_one(
        {"_id": request.id}, {"$set": {"claimed_until": utcnow() - timedelta(seconds=1)}}
    )

    done = await world.sender.handle(world.store.workspace_id, request.id)

    assert done.result == "unknown", "Sent cannot tell, so it is not risked twice"
    assert world.smtp.relayed == []
    assert (await world.stored(request)).state == "unknown"


async def test_a_crashed_attempt_found_in_sent_is_recorded_not_sent_again(
    world: SendWorld,
) -> None:
    request = await world.request(
        await world.mailbox(),
        state="sending",
        attempts=1,
        claimed_until=utcnow() - timedelta(minutes=5),
        data_started_at=utcnow() - timedelta(minutes=6),
    )
    world.sent_folder.message_ids.add(request.message_id)

    done = await world.sender.handle(world.store.workspace_id, request.id)

    assert done.result == "sent"
    assert world.smtp.relayed == []
    assert world.sent_folder.messages == [], "the copy in Sent is not filed twice"
    assert (await world.stored(request)).state == "sent"
    assert len(world.events.of_type(SENT)) == 1


async def test_a_crashed_attempt_that_never_reached_data_is_sent(world: SendWorld) -> None:
    request = await world.request(
        await world.mailbox(),
        state="sending",
        attempts=1,
        claimed_until=utcnow() - timedelta(minutes=5),
    )

    assert (await world.sender.handle(world.store.workspace_id, request.id)).result == "sent"
    assert len(world.smtp.relayed) == 1


async def test_a_disconnected_mailbox_refuses_the_request(world: SendWorld) -> None:
    mailbox = await world.mailbox()
    await world.store.mailboxes.update_one(
        {"_id": mailbox.id}, {"$set": {"status.state": "disconnected"}}
    )
    request = await world.request(mailbox)

    done = await world.sender.handle(world.store.workspace_id, request.id)

    assert done.result == "failed"
    assert (await world.stored(request)).error == "the sending mailbox is not connected"
    assert world.smtp.relayed == []


async def test_a_request_held_by_another_attempt_is_left_to_it(world: SendWorld) -> None:
    request = await world.request(
        await world.mailbox(),
        state="sending",
        attempts=1,
        claimed_until=utcnow() + timedelta(minutes=5),
    )

    done = await world.sender.handle(world.store.workspace_id, request.id)

    assert done.result == "held by another attempt"
    assert world.smtp.relayed == []


async def test_a_request_that_does_not_exist_is_dead_lettered(world: SendWorld) -> None:
    with pytest.raises(PermanentError):
        await world.sender.handle(world.store.workspace_id, "no-such-request")
