"""The associate service against the real RabbitMQ and MongoDB-wire server."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mailsync_associate.batch import BatchRepository, MailboxStoppedError
from mailsync_associate.logbook import Dropped, Logged, log_message
from mailsync_associate.repository import AssociateRepository
from mailsync_shared.association.scope import skipped_unmatched
from mailsync_shared.contracts.outbound import EmailSent, SentEmail
from mailsync_shared.messaging import REASON_HEADER
from mailsync_shared.storage.capture_rules import CaptureDecisionDocument
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import WorkspaceStore
from tests.integration.conftest_capture import (  # noqa: F401  (fixtures register by name)
    ServiceWorkspace,
    associate_service_fixture,
    ws_fixture,
)
from tests.support.captured_mail import MAILBOX_ID, OWNER, captured, stored_mail
from tests.support.mail import build_message
from tests.support.polling import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("associate_service")]

ANN = "ann@client.test"
LOGGED = "mailsync.email.logged.v1"
ASSOCIATED = "mailsync.thread.associated.v1"


async def logged_message(store: WorkspaceStore, message_id: str, **match: Any) -> Document:
    async def probe() -> Document | None:
        found = await store.messages.find_one({"message_id": message_id, **match})
        if found is None or await store.announced_messages.find_one({"_id": found["_id"]}) is None:
            return None
        return found

    return await eventually(probe, what=f"message {message_id} logged ({match})")


async def seed_records(store: WorkspaceStore) -> dict[str, str]:
    ids = {"contact": uuid.uuid4().hex, "company": uuid.uuid4().hex, "deal": uuid.uuid4().hex}
    await store.companies.insert_one(
        {"_id": ids["company"], "name": "Client Inc", "domains": ["client.test"]}
    )
    await store.contacts.insert_one(
        {"_id": ids["contact"], "name": "Ann Client", "emails": [ANN], "company_id": ids["company"]}
    )
    await store.deals.insert_one(
        {"_id": ids["deal"], "name": "Big deal", "status": "open", "contact_ids": [ids["contact"]]}
    )
    await store.deals.insert_one(
        {"_id": uuid.uuid4().hex, "name": "Old", "status": "won", "contact_ids": [ids["contact"]]}
    )
    return ids


async def test_received_message_is_logged_on_a_linked_thread(ws: ServiceWorkspace) -> None:
    ids = await seed_records(ws.store)
    email = build_message(
        sender=ANN, sender_name="Ann Client", to=[OWNER], subject="Proposal", body="Hello owner\n"
    )
    message = await stored_mail(ws.store, email)
    await ws.publish(captured(ws.id, message))

    stored = await logged_message(ws.store, message.message_id)
    assert stored["body_text"].strip() == "Hello owner"
    assert stored["direction"] == "received"
    assert stored["mailbox_ids"] == ["mb-owner"]
    thread = await ws.store.threads.find_one({"_id": stored["thread_id"]})
    assert thread is not None
    assert (thread["contact_ids"], thread["company_ids"], thread["deal_ids"]) == (
        [ids["contact"]],
        [ids["company"]],
        [ids["deal"]],
    )
    reasons = {r["record_id"]: r["reason"] for r in thread["link_reasons"]}
    assert reasons[ids["contact"]] == f"{ANN} is an address of contact Ann Client"
    assert (thread["message_count"], thread["subject"]) == (1, "Proposal")
    assert sorted(thread["participants"]) == [ANN, OWNER]

    published = await ws.events.wait_for(
        lambda e: {LOGGED, ASSOCIATED} <= {x["type"] for x in e}, "EmailLogged and ThreadAssociated"
    )
    logged = next(e for e in published if e["type"] == LOGGED)
    assert (logged["data"]["email_id"], logged["data"]["thread_id"]) == (
        stored["_id"],
        thread["_id"],
    )
    associated = next(e for e in published if e["type"] == ASSOCIATED)
    assert associated["data"]["deal_ids"] == [ids["deal"]]


async def test_reply_before_parent_and_a_redelivery_give_one_thread_logged_once(
    ws: ServiceWorkspace,
) -> None:
    parent = build_message(
        sender=OWNER,
        to=[ANN],
        subject="Plan",
        body="Here is the plan",
        date=datetime.now(UTC) - timedelta(hours=2),
    )
    reply = build_message(
        sender=ANN,
        to=[OWNER],
        subject="Re: Plan",
        body="Looks good",
        in_reply_to=parent["Message-ID"],
        references=[parent["Message-ID"]],
    )
    reply_mail = await stored_mail(ws.store, reply, uid=2)
    parent_mail = await stored_mail(ws.store, parent, direction="sent", folder="Sent", uid=7)
    reply_event = captured(ws.id, reply_mail)
    await ws.publish(reply_event)
    await ws.publish(reply_event)
    await ws.publish(captured(ws.id, parent_mail))

    stored_parent = await logged_message(ws.store, parent_mail.message_id)
    stored_reply = await logged_message(ws.store, reply_mail.message_id)
    assert stored_parent["thread_id"] == stored_reply["thread_id"]
    assert await ws.store.messages.count({}) == 2
    threads = await ws.store.threads.find({})
    assert len(threads) == 1
    assert threads[0]["message_count"] == 2
    assert threads[0]["subject"] == "Plan", "the earliest message names the thread"

    await ws.events.wait_for(lambda e: len([x for x in e if x["type"] == LOGGED]) >= 2, "2 logged")
    logged = [e["data"]["message_id"] for e in ws.events.events(LOGGED)]
    assert sorted(logged) == sorted([parent_mail.message_id, reply_mail.message_id])


async def test_sent_folder_copy_after_email_sent_merges_into_one_message(
    ws: ServiceWorkspace,
) -> None:
    email = build_message(sender=OWNER, to=[ANN], subject="Offer", body="Our offer")
    sent_now = await stored_mail(ws.store, email, direction="sent", with_source=False)
    sent_event = EmailSent.create(
        source="/test",
        workspace_id=ws.id,
        data=SentEmail(send_request_id="sr-1", thread_id=None, message=sent_now),
    )
    await ws.publish(sent_event)
    first = await logged_message(ws.store, sent_now.message_id)
    assert (first["direction"], first["send_request_id"], first["sources"]) == ("sent", "sr-1", [])

    sent_copy = await stored_mail(ws.store, email, direction="sent", folder="Sent", uid=42)
    await ws.publish(captured(ws.id, sent_copy))
    merged = await logged_message(ws.store, sent_copy.message_id, **{"sources.uid": 42})
    assert merged["_id"] == first["_id"]
    assert merged["send_request_id"] == "sr-1"
    assert await ws.store.messages.count({}) == 1
    await ws.events.drain()
    assert len(ws.events.events(LOGGED)) == 1


async def test_message_written_but_never_announced_is_announced_on_redelivery(
    ws: ServiceWorkspace,
) -> None:
    email = build_message(sender=ANN, to=[OWNER], subject="Crash", body="before the publish")
    message = await stored_mail(ws.store, email)
    # The state a SIGKILL between the writes and the publish leaves behind.
    await log_message(AssociateRepository(ws.store), message)
    assert await ws.store.messages.count({}) == 1
    assert await ws.store.announced_messages.count({}) == 0

    await ws.publish(captured(ws.id, message))
    await logged_message(ws.store, message.message_id)
    published = await ws.events.wait_for(lambda e: len(e) >= 1, "EmailLogged")
    assert [e["data"]["message_id"] for e in published if e["type"] == LOGGED] == [
        message.message_id
    ]
    assert await ws.store.messages.count({}) == 1


async def test_a_copy_logged_while_its_message_is_announced_is_not_announced_again(
    ws: ServiceWorkspace,
) -> None:
    email = build_message(sender=ANN, to=[OWNER], subject="Twice", body="in two folders")
    first = await stored_mail(ws.store, email)
    copy = await stored_mail(ws.store, email, folder="Archive", uid=9)
    # The batch before has stored the message and is publishing its events.
    await log_message(AssociateRepository(ws.store), first)

    repository = BatchRepository(ws.store, announcing=frozenset({first.message_id}))
    await repository.load([copy])
    logged = await log_message(repository, copy)
    await repository.flush()

    assert isinstance(logged, Logged)
    assert not logged.publish, "the events of the earlier batch cover this copy"
    stored = await ws.store.messages.find_one({"message_id": first.message_id})
    assert stored is not None
    assert sorted(source["uid"] for source in stored["sources"]) == [1, 9]

    unannounced = BatchRepository(ws.store)
    await unannounced.load([copy])
    again = await log_message(unannounced, copy)
    assert isinstance(again, Logged)
    assert again.publish, "once no batch is publishing them, the events are still due"


async def test_manually_linked_thread_keeps_its_links(ws: ServiceWorkspace) -> None:
    ids = await seed_records(ws.store)
    first = build_message(sender=ANN, to=[OWNER], subject="Manual", body="one")
    first_mail = await stored_mail(ws.store, first)
    await ws.publish(captured(ws.id, first_mail))
    stored = await logged_message(ws.store, first_mail.message_id)
    await ws.store.threads.update_one(
        {"_id": stored["thread_id"]},
        {"$set": {"manually_linked": True, "contact_ids": [], "company_ids": [], "deal_ids": []}},
    )

    reply = build_message(
        sender=ANN, to=[OWNER], subject="Re: Manual", body="two", in_reply_to=first["Message-ID"]
    )
    reply_mail = await stored_mail(ws.store, reply, uid=2)
    await ws.publish(captured(ws.id, reply_mail))
    stored_reply = await logged_message(ws.store, reply_mail.message_id)
    thread = await ws.store.threads.find_one({"_id": stored_reply["thread_id"]})
    assert thread is not None
    assert thread["_id"] == stored["thread_id"]
    assert thread["message_count"] == 2
    assert (thread["contact_ids"], thread["company_ids"], thread["deal_ids"]) == ([], [], [])
    assert ids["contact"] not in thread["contact_ids"]


async def test_invalid_message_is_dead_lettered_with_the_reason(ws: ServiceWorkspace) -> None:
    email = build_message(sender=ANN, to=[OWNER], subject="Broken", body="x")
    like = captured(ws.id, await stored_mail(ws.store, email))
    body = like.model_dump(mode="json", by_alias=True)
    body["data"]["message"]["size"] = -1
    await ws.publish_raw(json.dumps(body).encode(), like, message_id=like.id)

    await ws.dead_letters.wait_for(lambda e: len(e) >= 1, "a dead letter")
    letter = ws.dead_letters.received[0]
    assert letter.message_id == like.id
    assert str(letter.headers[REASON_HEADER]).startswith("ValidationError")
    assert "mailsync.associate.shard-" in str(letter.headers.get("x-mailsync-queue"))
    assert await ws.store.messages.count({}) == 0


@pytest.mark.parametrize("visibility", ["private", "metadata", "workspace"])
async def test_public_events_carry_what_the_mailboxs_visibility_publishes(
    ws: ServiceWorkspace, visibility: str
) -> None:
    await ws.store.mailboxes.update_one({"_id": MAILBOX_ID}, {"$set": {"visibility": visibility}})
    await seed_records(ws.store)
    email = build_message(
        sender=ANN,
        to=[OWNER],
        subject="Canary 51c2",
        body="x",
        extra_headers={"Bcc": "boss-51c2@acme.test"},
    )
    message = await stored_mail(ws.store, email)
    await ws.publish(captured(ws.id, message))

    published = await ws.events.wait_for(
        lambda e: {LOGGED, ASSOCIATED} <= {x["type"] for x in e}, "EmailLogged and ThreadAssociated"
    )
    text = json.dumps(published)
    logged = next(e for e in published if e["type"] == LOGGED)["data"]
    associated = next(e for e in published if e["type"] == ASSOCIATED)["data"]

    assert "boss-51c2" not in text
    assert ("Canary 51c2" in text) == (visibility == "workspace")
    assert (logged["message_id"] == message.message_id) == (visibility != "private")
    assert ([p["address"] for p in logged["participants"]] == [ANN, OWNER]) == (
        visibility != "private"
    )
    assert all("@" not in reason["reason"] for reason in associated["reasons"])
    assert associated["contact_ids"], "the record ids are published at every level"
    stored = await logged_message(ws.store, message.message_id)
    assert stored["subject"] == "Canary 51c2", "what is stored is whole"


async def decided(store: WorkspaceStore, message_id: str) -> None:
    """A decision capture would have stored about the message's sender."""
    decision = CaptureDecisionDocument(
        workspace_id=store.workspace_id,
        address=ANN,
        decision="skipped",
        rule="policy_none",
        message_id=message_id,
        mailbox_id=MAILBOX_ID,
    )
    await store.capture_decisions.insert_one(decision.to_document())


@pytest.mark.parametrize(
    "change",
    [
        {"status.state": "disconnected"},
        {"status.state": "disconnected", "erased_at": datetime.now(UTC)},
    ],
    ids=["disconnected", "erased"],
)
async def test_a_message_still_queued_for_a_stopped_mailbox_is_dropped_with_its_bytes(
    ws: ServiceWorkspace, change: dict[str, Any]
) -> None:
    await seed_records(ws.store)
    email = build_message(sender=ANN, to=[OWNER], subject="Late 3e1", body="queued before")
    message = await stored_mail(ws.store, email)
    await decided(ws.store, message.message_id)
    await ws.store.mailboxes.update_one({"_id": MAILBOX_ID}, {"$set": change})

    await ws.publish(captured(ws.id, message))

    async def bytes_gone() -> bool:
        return await ws.store.raw_messages.count({"_id": message.raw_id}) == 0

    await eventually(bytes_gone, what="the dropped message's raw bytes deleted")
    assert await ws.store.messages.count({}) == 0
    assert await ws.store.threads.count({}) == 0
    assert await ws.store.thread_refs.count({}) == 0
    assert await ws.store.capture_decisions.count({}) == 0
    assert await ws.events.drain() == []


async def test_a_skipped_client_only_message_leaves_no_bytes_and_no_decisions(
    ws: ServiceWorkspace,
) -> None:
    await ws.store.mailboxes.update_one(
        {"_id": MAILBOX_ID}, {"$set": {"sync.scope": "client_only"}}
    )
    email = build_message(sender="stranger-3e1@else.test", to=[OWNER], subject="Hi", body="x")
    message = await stored_mail(ws.store, email)
    await decided(ws.store, message.message_id)

    await ws.publish(captured(ws.id, message))

    async def forgotten() -> bool:
        counted = await skipped_unmatched(ws.store, MAILBOX_ID) == 1
        return counted and await ws.store.raw_messages.count({"_id": message.raw_id}) == 0

    await eventually(forgotten, what="the message counted as skipped and its bytes deleted")
    assert await ws.store.capture_decisions.count({}) == 0
    assert await ws.store.messages.count({}) == 0
    marker = await ws.store.collection("skipped_messages").find_one({})
    assert marker is not None
    assert "stranger" not in json.dumps(marker, default=str)
    assert message.message_id not in json.dumps(marker, default=str)


async def test_a_batch_whose_mailbox_is_erased_while_it_is_logged_writes_nothing(
    ws: ServiceWorkspace,
) -> None:
    await seed_records(ws.store)
    email = build_message(sender=ANN, to=[OWNER], subject="In flight 7b4", body="x")
    message = await stored_mail(ws.store, email)
    repository = BatchRepository(ws.store)
    await repository.load([message])
    logged = await log_message(repository, message)
    assert isinstance(logged, Logged)

    await ws.store.mailboxes.update_one(
        {"_id": MAILBOX_ID},
        {"$set": {"status.state": "disconnected", "erased_at": datetime.now(UTC)}},
    )

    with pytest.raises(MailboxStoppedError):
        await repository.flush()
    assert await ws.store.messages.count({}) == 0
    assert await ws.store.threads.count({}) == 0
    assert await ws.store.thread_refs.count({}) == 0
    again = BatchRepository(ws.store)
    await again.load([message])
    assert isinstance(await log_message(again, message), Dropped), "redelivered, it is dropped"
