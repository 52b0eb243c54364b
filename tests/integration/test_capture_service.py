"""The capture service against the real RabbitMQ and MongoDB-wire server."""

import asyncio
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.capture_policy.batch import BatchCaptureRepository
from mailsync_shared.capture_policy.capturing import CaptureResult, capture_contacts
from mailsync_shared.capture_policy.repository import CaptureRepository, captured_contact_id
from mailsync_shared.capture_policy.rules import free_mail_domains
from mailsync_shared.contracts.mail import MailMessage, MessageFetched
from mailsync_shared.messaging import REASON_HEADER
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore
from mailsync_shared.topology import WORK_EXCHANGE
from tests.integration.conftest_capture import (  # noqa: F401  (fixtures register by name)
    ServiceWorkspace,
    Tap,
    capture_service_fixture,
    ws_fixture,
)
from tests.support.polling import eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("capture_service")]

OWNER = "owner@acme.test"
CAPTURED = "mailsync.message.captured.v1"
CONTACT_CAPTURED = "mailsync.contact.captured.v1"


@pytest.fixture
async def captured(ws: ServiceWorkspace) -> Tap:
    """A tap on the MessageCaptured work messages capture passes on for the workspace."""
    return await ws.tap(WORK_EXCHANGE.name, f"{CAPTURED}.{ws.id}")


def fetched(workspace_id: str, **fields: Any) -> MessageFetched:
    unique = uuid.uuid4().hex[:12]
    data: dict[str, Any] = {
        "mailbox_id": "mb-owner",
        "owner_address": OWNER,
        "direction": "sent",
        "raw_id": f"raw-{unique}",
        "size": 1200,
        "message_id": f"<{unique}@acme.test>",
        "subject": "Proposal",
        "from": {"address": OWNER, "name": "Owner"},
        "to": [{"address": "ann@client.test", "name": "Ann Client"}],
        **fields,
    }
    return MessageFetched.create(
        source="/test", workspace_id=workspace_id, data=MailMessage.model_validate(data)
    )


async def decisions_of(store: WorkspaceStore, message_id: str, count: int) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        found = await store.capture_decisions.find({"message_id": message_id})
        return {d["address"]: d for d in found} if len(found) >= count else None

    return await eventually(probe, what=f"{count} capture decisions for {message_id}")


async def test_sent_message_creates_contacts_by_the_rules(
    ws: ServiceWorkspace, captured: Tap
) -> None:
    await ws.store.companies.insert_one(
        {"_id": f"co-{ws.id}", "name": "Client Inc", "domains": ["client.test"]}
    )
    event = fetched(
        ws.id,
        to=[
            {"address": "ann@client.test", "name": "Ann Client"},
            {"address": "noreply@client.test"},
            {"address": "pal@gmail.com", "name": "Pal"},
            {"address": "colleague@acme.test"},
        ],
    )
    await ws.publish(event)

    decisions = await decisions_of(ws.store, event.data.message_id, 5)
    assert {a: (d["decision"], d["rule"]) for a, d in decisions.items()} == {
        OWNER: ("skipped", "owner_address"),
        "ann@client.test": ("captured", "policy_sent"),
        "noreply@client.test": ("skipped", "role_address"),
        "pal@gmail.com": ("skipped", "free_mail_domain"),
        "colleague@acme.test": ("skipped", "internal_domain"),
    }
    contacts = await ws.store.contacts.find({})
    assert len(contacts) == 1
    ann = contacts[0]
    assert (ann["name"], ann["emails"], ann["source"]) == (
        "Ann Client",
        ["ann@client.test"],
        "capture",
    )
    assert ann["company_id"] == f"co-{ws.id}"
    assert decisions["ann@client.test"]["contact_id"] == ann["_id"]

    published = await ws.events.wait_for(lambda e: len(e) >= 1, "ContactCaptured")
    assert [(e["type"], e["data"]["contact_id"], e["data"]["rule"]) for e in published] == [
        (CONTACT_CAPTURED, ann["_id"], "policy_sent")
    ]
    work = await captured.wait_for(lambda e: len(e) >= 1, "MessageCaptured")
    assert work[0]["data"]["message"]["message_id"] == event.data.message_id
    assert work[0]["data"]["contacts"] == [{"contact_id": ann["_id"], "address": "ann@client.test"}]


async def test_redelivery_creates_no_second_contact(ws: ServiceWorkspace, captured: Tap) -> None:
    event = fetched(ws.id)
    await ws.publish(event)
    await ws.publish(event)
    work = await captured.wait_for(lambda e: len(e) >= 2, "two MessageCaptured")
    assert {w["id"] for w in work} == {work[0]["id"]}, "a redelivery keeps the event id"
    assert await ws.store.contacts.count({}) == 1
    # Each delivery published its ContactCaptured before its MessageCaptured.
    await ws.events.drain()
    contact_events = ws.events.events(CONTACT_CAPTURED)
    assert len(contact_events) >= 1
    assert len({e["id"] for e in contact_events}) == 1, "repeats carry the same event id"

    # A later message to the same person finds the contact: decision "existing".
    later = fetched(ws.id)
    await ws.publish(later)
    decisions = await decisions_of(ws.store, later.data.message_id, 2)
    assert decisions["ann@client.test"]["decision"] == "existing"
    assert await ws.store.contacts.count({}) == 1


async def test_received_mail_follows_the_workspace_policy(ws: ServiceWorkspace) -> None:
    received = {
        "direction": "received",
        "from": {"address": "bob@client.test", "name": "Bob"},
        "to": [{"address": OWNER}],
    }
    first = fetched(ws.id, **received)
    await ws.publish(first)
    decisions = await decisions_of(ws.store, first.data.message_id, 2)
    assert decisions["bob@client.test"]["rule"] == "policy_sent_only"
    assert await ws.store.contacts.count({}) == 0

    await ws.store.collection("capture_rules").insert_one(
        {"_id": ws.id, "policy": "sent_and_received", "blocked": ["@spam.test"]}
    )
    second = fetched(ws.id, **{**received, "cc": [{"address": "x@spam.test"}]})
    await ws.publish(second)
    decisions = await decisions_of(ws.store, second.data.message_id, 3)
    assert decisions["bob@client.test"]["decision"] == "captured"
    assert decisions["x@spam.test"]["rule"] == "blocked_domain"
    assert [c["emails"] for c in await ws.store.contacts.find({})] == [["bob@client.test"]]


async def test_invalid_message_is_dead_lettered_with_the_reason(ws: ServiceWorkspace) -> None:
    like = fetched(ws.id)
    body = like.model_dump(mode="json", by_alias=True)
    del body["data"]["message_id"]
    await ws.publish_raw(json.dumps(body).encode(), like, message_id=like.id)

    await ws.dead_letters.wait_for(lambda e: len(e) >= 1, "a dead letter")
    letter = ws.dead_letters.received[0]
    assert letter.message_id == like.id
    assert str(letter.headers[REASON_HEADER]).startswith("ValidationError")
    assert "mailsync.capture.shard-" in str(letter.headers.get("x-mailsync-queue"))
    assert await ws.store.capture_decisions.count({}) == 0


@pytest.mark.parametrize("together", [False, True], ids=["one-per-message", "one-message"])
async def test_one_workspace_is_passed_on_in_delivery_order(
    ws: ServiceWorkspace, captured: Tap, together: bool
) -> None:
    sent = [fetched(ws.id) for _ in range(40)]
    if together:  # as ingest publishes a batch: one message holding the list
        body = [event.model_dump(mode="json", by_alias=True) for event in sent]
        await ws.publish_raw(json.dumps(body).encode(), sent[0])
    else:
        for event in sent:
            await ws.publish(event)

    work = await captured.wait_for(lambda e: len(e) >= len(sent), "every MessageCaptured")
    assert [w["data"]["message"]["message_id"] for w in work] == [e.data.message_id for e in sent]
    if together:
        assert len(captured.received) < len(sent), "passed on in messages holding several"
    assert await ws.store.contacts.count({}) == 1, "one contact for the address all of them share"


async def test_messages_delivered_together_decide_as_one_after_another(
    ws: ServiceWorkspace,
) -> None:
    to = [{"address": "dana@newco.test", "name": "Dana"}]
    messages = [fetched(ws.id, to=to) for _ in range(5)]
    await asyncio.gather(*(ws.publish(m) for m in messages))

    decided = [await decisions_of(ws.store, m.data.message_id, 2) for m in messages]
    outcomes = sorted(d["dana@newco.test"]["decision"] for d in decided)
    assert outcomes == ["captured", "existing", "existing", "existing", "existing"]
    contacts = await ws.store.contacts.find({})
    assert [c["emails"] for c in contacts] == [["dana@newco.test"]]


async def seed_workspace(mongo: AsyncDatabase[Document], workspace_id: str) -> WorkspaceStore:
    """Rules, a company, a contact from the api and a retracted captured contact."""
    store = WorkspaceStore(mongo, workspace_id)
    await store.collection("capture_rules").insert_one(
        {"_id": workspace_id, "policy": "sent_and_received", "create_companies": True}
    )
    await store.companies.insert_one(
        {"_id": f"co-{workspace_id}", "name": "Client Inc", "domains": ["client.test"]}
    )
    await store.contacts.insert_one(
        {"_id": f"known-{workspace_id}", "name": "Known", "emails": ["known@client.test"]}
    )
    await store.contacts.insert_one(
        {
            "_id": captured_contact_id(workspace_id, "old@client.test"),
            "name": "Old",
            "emails": ["old@client.test"],
            "source": "capture",
            "captured_message_id": "<earlier@client.test>",
            "retracted_at": datetime(2024, 1, 1, tzinfo=UTC),
            "retracted_rule": "policy_sent",
        }
    )
    return store


def person(address: str) -> dict[str, str]:
    return {"address": address, "name": address.split("@")[0].title()}


def varied_messages() -> list[MailMessage]:
    """Messages whose decisions depend on what the messages before them created."""
    first = fetched("any", to=[person("ann@client.test"), person("new@newco.test")]).data
    return [
        first,
        fetched(
            "any",
            direction="received",
            **{"from": person("ann@client.test")},
            to=[{"address": OWNER}],
        ).data,
        fetched("any", to=[person("old@client.test"), person("dev@sub.newco.test")]).data,
        first,  # a second delivery of the same message within the batch
        fetched("any", to=[person("known@client.test"), person("pal@gmail.com")]).data,
        fetched("any", cc=[person("new@newco.test"), person("noreply@newco.test")]).data,
    ]


async def stored_outcome(store: WorkspaceStore, messages: Sequence[MailMessage]) -> Any:
    """What capture left, with ids a workspace derives replaced by what they name."""
    contacts = {c["_id"]: c for c in await store.contacts.find({})}
    companies = {c["_id"]: c for c in await store.companies.find({})}
    decisions = {
        (d["message_id"], d["address"]): (
            d["decision"],
            d["rule"],
            contacts[d["contact_id"]]["emails"] if d.get("contact_id") else None,
        )
        for d in await store.capture_decisions.find({})
    }
    return (
        [sorted(a for (m, a) in decisions if m == message.message_id) for message in messages],
        decisions,
        sorted(
            (
                c["emails"],
                c.get("captured_message_id"),
                c.get("retracted_at") is not None,
                companies[c["company_id"]]["name"] if c.get("company_id") else None,
            )
            for c in contacts.values()
        ),
        sorted(c["name"] for c in companies.values()),
    )


def reported(results: Sequence[CaptureResult]) -> list[list[tuple[str, str]]]:
    return [sorted((n.address, n.rule) for n in result.new_contacts) for result in results]


async def test_a_batch_decides_exactly_as_messages_one_after_another(
    mongo: AsyncDatabase[Document],
) -> None:
    messages = varied_messages()
    one_by_one = await seed_workspace(mongo, f"ws{uuid.uuid4().hex}")
    together = await seed_workspace(mongo, f"ws{uuid.uuid4().hex}")
    system = SystemCollections(mongo)

    alone = [
        await capture_contacts(CaptureRepository(one_by_one, system), m, free_mail_domains())
        for m in messages
    ]
    batch = BatchCaptureRepository(together, system)
    await batch.load(messages)
    batched = [await capture_contacts(batch, m, free_mail_domains()) for m in messages]
    assert await together.capture_decisions.count({}) == 0, "decisions wait for the batch write"
    await batch.write_decisions()

    assert reported(batched) == reported(alone)
    assert [[(d.address, d.decision, d.rule) for d in r.decisions] for r in batched] == [
        [(d.address, d.decision, d.rule) for d in r.decisions] for r in alone
    ]
    assert await stored_outcome(together, messages) == await stored_outcome(one_by_one, messages)
    _, decisions, contacts, companies = await stored_outcome(together, messages)
    assert decisions[(messages[1].message_id, "ann@client.test")][0] == "existing"
    assert decisions[(messages[2].message_id, "old@client.test")][0] == "captured"
    assert (["old@client.test"], messages[2].message_id, False, "Client Inc") in contacts
    assert (["dev@sub.newco.test"], messages[2].message_id, False, "newco.test") in contacts
    assert companies == ["Client Inc", "newco.test"]


async def test_a_batch_rewrites_decisions_already_stored(mongo: AsyncDatabase[Document]) -> None:
    store = await seed_workspace(mongo, f"ws{uuid.uuid4().hex}")
    system = SystemCollections(mongo)
    messages = varied_messages()[:3]
    await capture_contacts(CaptureRepository(store, system), messages[0], free_mail_domains())
    first = {d["_id"]: d["at"] for d in await store.capture_decisions.find({})}
    await asyncio.sleep(0.01)

    batch = BatchCaptureRepository(store, system)
    await batch.load(messages)
    for message in messages:
        await capture_contacts(batch, message, free_mail_domains())
    await batch.write_decisions()

    decisions = await store.capture_decisions.find({"message_id": messages[0].message_id})
    assert sorted(d["address"] for d in decisions) == sorted(
        ["ann@client.test", "new@newco.test", OWNER]
    )
    assert all(d["at"] > first[d["_id"]] for d in decisions), "stored ones were rewritten"
    assert await store.capture_decisions.count({}) == 3 + 2 + 3


async def test_a_message_of_a_disconnected_mailbox_is_dropped_with_its_bytes(
    ws: ServiceWorkspace, captured: Tap
) -> None:
    await ws.store.mailboxes.update_one(
        {"_id": "mb-owner"}, {"$set": {"status.state": "disconnected"}}
    )
    dropped = fetched(ws.id, to=[{"address": "dropped-5d2@client.test"}])
    await ws.store.raw_messages.insert_one({"_id": dropped.data.raw_id, "size": 1, "data": b"x"})

    await ws.publish(dropped)

    async def bytes_gone() -> bool:
        return await ws.store.raw_messages.count({"_id": dropped.data.raw_id}) == 0

    await eventually(bytes_gone, what="the dropped message's bytes deleted")
    assert await ws.store.capture_decisions.count({}) == 0
    assert await ws.store.contacts.count({}) == 0
    assert await captured.drain() == []
