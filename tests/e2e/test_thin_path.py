"""One conversation through all five services, driven only by the public API and real mail.

A client writes to the mailbox owner; the message lands on the client's contact timeline.
The owner replies from the record; the client receives it from the owner's real address with
the right threading headers; the reply shows once, also after ingest has seen its copy in
Sent. The client answers from their own mailbox; the answer joins the same thread.
"""

import asyncio
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes, policy
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_devtools.stack import RunningService
from mailsync_shared.storage.client import Document
from tests.support.infra import Infra
from tests.support.mail import (
    MailAccount,
    build_message,
    create_account,
    deliver,
    fetch_all,
    flags_by_uid,
    mailbox_connection,
    submit,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def service_logs_on_failure(
    request: pytest.FixtureRequest, stack: list[RunningService]
) -> Iterator[None]:
    yield
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        for item in stack:
            print(f"--- {item.service.name} ({item.log_path})\n{item.log_tail(40)}")


@pytest.fixture
async def api(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        yield client


async def timeline_threads(api: httpx.AsyncClient, contact_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/contacts/{contact_id}/timeline")
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def header(raw: bytes, name: str) -> str:
    return str(message_from_bytes(raw, policy=policy.default)[name] or "")


async def test_a_conversation_round_trips_through_all_five_services(
    api: httpx.AsyncClient,
    infra: Infra,
    mongo: AsyncDatabase[Document],
    stack: list[RunningService],
) -> None:
    owner: MailAccount = create_account(infra, "acme.test", "owner")
    client: MailAccount = create_account(infra, "client.test", "ann")

    # 1. A workspace and a contact for the client.
    created = await api.post("/v1/workspaces", json={"name": "Acme", "domains": ["acme.test"]})
    assert created.status_code == 201, created.text
    workspace = created.json()
    api.headers["Authorization"] = f"Bearer {workspace['api_key']}"
    contact = await api.post(
        "/v1/contacts", json={"name": "Ann Client", "emails": [client.address]}
    )
    assert contact.status_code == 201, contact.text
    contact_id = contact.json()["id"]

    # 2. Connect the owner's IMAP/SMTP account on Dovecot.
    mailbox = await api.post(
        "/v1/mailboxes",
        json=mailbox_connection(
            infra,
            owner,
            display_name="Olive Owner",
            sync={"backfill_days": 30},
            append_to_sent=True,
        ),
    )
    assert mailbox.status_code == 201, mailbox.text
    assert owner.password not in mailbox.text

    # 3. The client writes; ingest -> capture -> associate put it on the contact's timeline.
    first = build_message(
        sender=client.address,
        sender_name="Ann Client",
        to=[owner.address],
        subject="Pricing for 40 seats",
        body="Hi Olive, could you send pricing for 40 seats?",
    )
    deliver(infra, first, [owner.address])
    first_id = str(first["Message-ID"])

    async def thread_with(count: int) -> list[dict[str, Any]] | None:
        threads = await timeline_threads(api, contact_id)
        if len(threads) == 1 and len(threads[0]["messages"]) >= count:
            return threads
        return None

    threads = await eventually(lambda: thread_with(1), timeout=60, what="the client's message")
    thread_id = threads[0]["id"]
    assert threads[0]["messages"][0]["message_id"] == first_id
    assert threads[0]["messages"][0]["direction"] == "received"

    # 4. The owner replies from the record; send relays it from the owner's address.
    reply = await api.post(
        f"/v1/threads/{thread_id}/reply",
        json={"body_text": "Hi Ann, 40 seats are 24,000 a year.", "idempotency_key": "reply-1"},
    )
    assert reply.status_code == 202, reply.text
    request_id = reply.json()["id"]

    async def sent_state() -> str | None:
        response = await api.get(f"/v1/send-requests/{request_id}")
        state: str = response.json()["state"]
        assert state not in {"failed", "unknown"}, response.text
        return state if state == "sent" else None

    await eventually(sent_state, timeout=60, what="the reply to be sent")

    async def client_inbox() -> list[bytes] | None:
        received = await asyncio.to_thread(fetch_all, infra, client)
        return received or None

    received = await eventually(client_inbox, what="the reply in the client's mailbox")
    assert len(received) == 1
    reply_raw = received[0]
    reply_id = header(reply_raw, "Message-ID")
    assert owner.address in header(reply_raw, "From")
    assert header(reply_raw, "In-Reply-To") == first_id
    assert first_id in header(reply_raw, "References")
    assert header(reply_raw, "Subject") == "Re: Pricing for 40 seats"

    # The copy in the owner's Sent folder is seen by ingest and merged, not logged twice.
    async def sent_copy_seen() -> bool:
        logged = await mongo["messages"].find_one(
            {"workspace_id": workspace["id"], "message_id": reply_id}
        )
        return logged is not None and any(
            source.get("folder_role") == "sent" for source in logged.get("sources", [])
        )

    await eventually(sent_copy_seen, timeout=60, what="ingest to see the reply in Sent")
    threads = await timeline_threads(api, contact_id)
    assert len(threads) == 1
    assert [m["message_id"] for m in threads[0]["messages"]] == [first_id, reply_id]

    # 5. The client answers from their own mailbox; the answer joins the same thread.
    answer = build_message(
        sender=client.address,
        sender_name="Ann Client",
        to=[owner.address],
        subject="Re: Pricing for 40 seats",
        body="Thanks, let's go ahead.",
        in_reply_to=reply_id,
        references=[first_id, reply_id],
    )
    await asyncio.to_thread(submit, infra, client, answer)
    threads = await eventually(lambda: thread_with(3), timeout=60, what="the client's answer")
    assert threads[0]["id"] == thread_id
    assert [m["message_id"] for m in threads[0]["messages"]] == [
        first_id,
        reply_id,
        str(answer["Message-ID"]),
    ]

    # Nothing in the owner's mailbox was changed by the sync: INBOX mail is still unread.
    inbox_flags = await asyncio.to_thread(flags_by_uid, infra, owner, "INBOX")
    assert len(inbox_flags) == 2
    assert all("\\Seen" not in flags for flags in inbox_flags.values()), inbox_flags
    for item in stack:
        assert item.process.poll() is None, f"{item.service.name} died:\n{item.log_tail()}"
