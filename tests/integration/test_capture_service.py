"""The capture service against the real RabbitMQ and MongoDB-wire server."""

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_capture.app import create_app
from mailsync_capture.settings import Settings
from mailsync_shared.contracts.mail import MailMessage, MessageFetched
from mailsync_shared.messaging import REASON_HEADER
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.topology import (
    CAPTURE_MESSAGES,
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    WORK_EXCHANGE,
)
from tests.integration.conftest_capture import (
    Tap,
    publish,
    publish_raw,
    running,
    settings_from,
    taps,
)
from tests.support.infra import Infra
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

OWNER = "owner@acme.test"
CAPTURED = "mailsync.message.captured.v1"
CONTACT_CAPTURED = "mailsync.contact.captured.v1"


@pytest.fixture(scope="module")
async def capture_service(
    service_env: dict[str, str], mongo: AsyncDatabase[Document]
) -> AsyncIterator[None]:
    async with running(create_app(settings_from(service_env, Settings))):
        yield


@pytest.fixture
async def tapped(infra: Infra, workspace_id: str) -> AsyncIterator[tuple[Tap, Tap, Tap]]:
    """Taps on the public events, the captured work messages and the dead letters."""
    async with taps(infra.rabbitmq_url) as tap:
        yield (
            await tap(EVENTS_EXCHANGE.name, f"#.{workspace_id}"),
            await tap(WORK_EXCHANGE.name, f"{CAPTURED}.{workspace_id}"),
            await tap(DEAD_LETTER_EXCHANGE.name, f"#.{workspace_id}"),
        )


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
    capture_service: None,
    broker: Any,
    store: WorkspaceStore,
    workspace_id: str,
    tapped: tuple[Tap, Tap, Tap],
) -> None:
    events, captured, _ = tapped
    await store.companies.insert_one(
        {"_id": f"co-{workspace_id}", "name": "Client Inc", "domains": ["client.test"]}
    )
    event = fetched(
        workspace_id,
        to=[
            {"address": "ann@client.test", "name": "Ann Client"},
            {"address": "noreply@client.test"},
            {"address": "pal@gmail.com", "name": "Pal"},
            {"address": "colleague@acme.test"},
        ],
    )
    await publish(broker, event)

    decisions = await decisions_of(store, event.data.message_id, 5)
    assert {a: (d["decision"], d["rule"]) for a, d in decisions.items()} == {
        OWNER: ("skipped", "owner_address"),
        "ann@client.test": ("captured", "policy_sent"),
        "noreply@client.test": ("skipped", "role_address"),
        "pal@gmail.com": ("skipped", "free_mail_domain"),
        "colleague@acme.test": ("skipped", "internal_domain"),
    }
    contacts = await store.contacts.find({})
    assert len(contacts) == 1
    ann = contacts[0]
    assert (ann["name"], ann["emails"], ann["source"]) == (
        "Ann Client",
        ["ann@client.test"],
        "capture",
    )
    assert ann["company_id"] == f"co-{workspace_id}"
    assert decisions["ann@client.test"]["contact_id"] == ann["_id"]

    published = await events.wait_for(lambda e: len(e) >= 1, "ContactCaptured")
    assert [(e["type"], e["data"]["contact_id"], e["data"]["rule"]) for e in published] == [
        (CONTACT_CAPTURED, ann["_id"], "policy_sent")
    ]
    work = await captured.wait_for(lambda e: len(e) >= 1, "MessageCaptured")
    assert work[0]["data"]["message"]["message_id"] == event.data.message_id
    assert work[0]["data"]["contacts"] == [{"contact_id": ann["_id"], "address": "ann@client.test"}]


async def test_redelivery_creates_no_second_contact(
    capture_service: None,
    broker: Any,
    store: WorkspaceStore,
    workspace_id: str,
    tapped: tuple[Tap, Tap, Tap],
) -> None:
    events, captured, _ = tapped
    event = fetched(workspace_id)
    await publish(broker, event)
    await publish(broker, event)
    work = await captured.wait_for(lambda e: len(e) >= 2, "two MessageCaptured")
    assert {w["id"] for w in work} == {work[0]["id"]}, "a redelivery keeps the event id"
    assert await store.contacts.count({}) == 1
    # Each delivery published its ContactCaptured before its MessageCaptured.
    await events.drain()
    contact_events = events.events(CONTACT_CAPTURED)
    assert len(contact_events) >= 1
    assert len({e["id"] for e in contact_events}) == 1, "repeats carry the same event id"

    # A later message to the same person finds the contact: decision "existing".
    later = fetched(workspace_id)
    await publish(broker, later)
    decisions = await decisions_of(store, later.data.message_id, 2)
    assert decisions["ann@client.test"]["decision"] == "existing"
    assert await store.contacts.count({}) == 1


async def test_received_mail_follows_the_workspace_policy(
    capture_service: None,
    broker: Any,
    store: WorkspaceStore,
    workspace_id: str,
) -> None:
    received = {
        "direction": "received",
        "from": {"address": "bob@client.test", "name": "Bob"},
        "to": [{"address": OWNER}],
    }
    first = fetched(workspace_id, **received)
    await publish(broker, first)
    decisions = await decisions_of(store, first.data.message_id, 2)
    assert decisions["bob@client.test"]["rule"] == "policy_sent_only"
    assert await store.contacts.count({}) == 0

    await store.collection("capture_rules").insert_one(
        {"_id": workspace_id, "policy": "sent_and_received", "blocked": ["@spam.test"]}
    )
    second = fetched(workspace_id, **{**received, "cc": [{"address": "x@spam.test"}]})
    await publish(broker, second)
    decisions = await decisions_of(store, second.data.message_id, 3)
    assert decisions["bob@client.test"]["decision"] == "captured"
    assert decisions["x@spam.test"]["rule"] == "blocked_domain"
    assert [c["emails"] for c in await store.contacts.find({})] == [["bob@client.test"]]


async def test_invalid_message_is_dead_lettered_with_the_reason(
    capture_service: None,
    broker: Any,
    store: WorkspaceStore,
    workspace_id: str,
    tapped: tuple[Tap, Tap, Tap],
) -> None:
    _, _, dead = tapped
    like = fetched(workspace_id)
    body = like.model_dump(mode="json", by_alias=True)
    del body["data"]["message_id"]
    await publish_raw(broker, __import__("json").dumps(body).encode(), like, message_id=like.id)

    await dead.wait_for(lambda e: len(e) >= 1, "a dead letter")
    letter = dead.received[0]
    assert letter.message_id == like.id
    assert str(letter.headers[REASON_HEADER]).startswith("ValidationError")
    assert CAPTURE_MESSAGES.queue.name in str(letter.headers.get("x-mailsync-queue"))
    assert await store.capture_decisions.count({}) == 0
