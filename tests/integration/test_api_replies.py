"""Replying and composing through the api: one stored request, one `SendRequested` on the bus."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aio_pika
import httpx
import pytest
from faststream.rabbit import RabbitBroker, RabbitQueue
from pydantic import SecretStr

from mailsync_shared.contracts.mail import Address
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.send_outbox import send_request_id
from mailsync_shared.storage.documents import (
    MailboxDocument,
    MessageDocument,
    ServerAccount,
    ThreadDocument,
)
from mailsync_shared.topology import WORK_EXCHANGE
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
    other_ws_fixture,
    ws_fixture,
)
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

OWNER = Address(address="olga@acme.test", name="Olga Owner")
ANN = Address(address="ann@client.test", name="Ann")
BEN = Address(address="ben@client.test", name="Ben")
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def send_requests(
    broker: RabbitBroker, ws: ApiWorkspace
) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A temporary queue receiving this workspace's `SendRequested` commands."""
    queue = await broker.declare_queue(
        RabbitQueue(f"test.api.send-requested.{uuid.uuid4().hex}", auto_delete=True)
    )
    await queue.bind(WORK_EXCHANGE.name, routing_key=f"mailsync.send.requested.v1.{ws.id}")
    yield queue
    await queue.delete(if_unused=False, if_empty=False)


async def drain(queue: aio_pika.abc.AbstractQueue) -> list[dict[str, Any]]:
    bodies = []
    while (message := await queue.get(no_ack=True, fail=False)) is not None:
        bodies.append(json.loads(message.body))
    return bodies


async def insert_mailbox(ws: ApiWorkspace, secret_key: str, **overrides: Any) -> MailboxDocument:
    cipher = CredentialCipher(SecretStr(secret_key))
    account = {
        "host": "127.0.0.1",
        "port": 10143,
        "security": "none",
        "username": OWNER.address,
        "secret_encrypted": cipher.encrypt("pw"),
    }
    fields = {
        "address": OWNER.address,
        "display_name": OWNER.name,
        "imap": ServerAccount(**account),
        "smtp": ServerAccount(**{**account, "port": 10587}),
        "owner_user_id": ws.owner_user_id,
        **overrides,
    }
    mailbox = MailboxDocument(workspace_id=ws.id, **fields)
    await ws.store.mailboxes.insert_one(mailbox.to_document())
    return mailbox


async def insert_thread(
    ws: ApiWorkspace, mailbox: MailboxDocument, *messages: dict[str, Any]
) -> tuple[ThreadDocument, list[MessageDocument]]:
    """A thread whose messages are given oldest first, stored in reverse to prove ordering."""
    thread = ThreadDocument(
        workspace_id=ws.id,
        subject=messages[0]["subject"],
        mailbox_ids=[mailbox.id],
        last_message_at=T0 + timedelta(hours=len(messages)),
        message_count=len(messages),
    )
    documents = [
        MessageDocument(
            workspace_id=ws.id,
            thread_id=thread.id,
            mailbox_ids=[mailbox.id],
            raw_id=f"raw-{index}",
            date=T0 + timedelta(hours=index),
            message_id=f"<m{index}.{thread.id}@client.test>",
            **fields,
        )
        for index, fields in enumerate(messages)
    ]
    thread.message_ids = [document.message_id for document in documents]
    await ws.store.threads.insert_one(thread.to_document())
    for document in reversed(documents):
        await ws.store.messages.insert_one(document.to_document())
    return thread, documents


async def post_send_request(
    api: httpx.AsyncClient, auth: dict[str, str], body: dict[str, Any]
) -> httpx.Response:
    """Compose: POST /v1/send-requests with `auth` as headers."""
    return await api.post("/v1/send-requests", json=body, headers=auth)


async def post_to_thread(
    api: httpx.AsyncClient, auth: dict[str, str], thread_id: str, action: str, body: dict[str, Any]
) -> httpx.Response:
    """Reply on or forward (`action`) a thread with `auth` as headers."""
    return await api.post(f"/v1/threads/{thread_id}/{action}", json=body, headers=auth)


def compose_to_ann(mailbox_id: str) -> dict[str, Any]:
    """The smallest message to compose: to Ann, from `mailbox_id`."""
    return {
        "mailbox_id": mailbox_id,
        "to": [{"address": ANN.address}],
        "subject": "S",
        "body_text": "B",
    }


def from_ann(**fields: Any) -> dict[str, Any]:
    return {"direction": "received", "from_": ANN, "to": [OWNER], **fields}


async def test_reply_stores_one_request_and_publishes_one_send_requested(
    api: httpx.AsyncClient,
    ws: ApiWorkspace,
    secret_key: str,
    send_requests: aio_pika.abc.AbstractQueue,
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    thread, messages = await insert_thread(
        ws,
        mailbox,
        from_ann(subject="Pricing"),
        {
            "direction": "sent",
            "from_": OWNER,
            "to": [ANN],
            "subject": "Re: Pricing",
            "references": ["<m0@client.test>"],
        },
        from_ann(
            subject="RE: Pricing", cc=[BEN], references=["<root@client.test>", "<m1@client.test>"]
        ),
    )
    last = messages[-1]

    response = await post_to_thread(
        api,
        ws.auth,
        thread.id,
        "reply",
        {"body_text": "Thanks, Ann!", "idempotency_key": "reply-1"},
    )

    assert response.status_code == 202, response.text
    request = response.json()
    assert request["state"] == "queued"
    assert request["thread_id"] == thread.id
    assert request["mailbox_id"] == mailbox.id
    assert request["from"] == {"address": OWNER.address, "name": OWNER.name}
    assert request["to"] == [{"address": ANN.address, "name": ANN.name}]
    assert request["cc"] == []
    assert request["subject"] == "RE: Pricing"
    assert request["in_reply_to"] == [last.message_id]
    assert request["references"] == ["<root@client.test>", "<m1@client.test>", last.message_id]
    assert request["message_id"].endswith("@acme.test>")
    stored = await ws.store.send_requests.find_one({"_id": request["id"]})
    assert stored is not None
    assert stored["message_id"] == request["message_id"]
    assert stored["state"] == "queued"
    assert stored["_id"] == send_request_id(ws.id, f"user:{ws.owner_user_id}", "reply-1")
    published = await eventually(
        lambda: drain(send_requests), what="SendRequested on mailsync.work"
    )
    assert len(published) == 1
    assert published[0]["type"] == "mailsync.send.requested.v1"
    assert published[0]["workspaceid"] == ws.id
    assert published[0]["data"] == {"send_request_id": request["id"]}


async def test_the_same_idempotency_key_returns_the_same_request_without_publishing_again(
    api: httpx.AsyncClient,
    ws: ApiWorkspace,
    secret_key: str,
    send_requests: aio_pika.abc.AbstractQueue,
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    thread, _ = await insert_thread(ws, mailbox, from_ann(subject="Hello"))
    body = {"body_text": "Hi", "idempotency_key": "same-key"}

    first = await post_to_thread(api, ws.auth, thread.id, "reply", body)
    second = await post_to_thread(api, ws.auth, thread.id, "reply", body)

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json() == first.json()
    assert await ws.store.send_requests.count() == 1
    # Each publish was confirmed by the broker before its answer, so the queue holds all there are.
    assert len(await drain(send_requests)) == 1


async def test_reply_all_copies_everyone_else_and_never_the_owner(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    thread, _ = await insert_thread(
        ws,
        mailbox,
        from_ann(subject="Team", to=[OWNER, BEN], cc=[Address(address="cy@client.test")]),
    )

    response = await post_to_thread(
        api, ws.auth, thread.id, "reply", {"body_text": "All", "reply_all": True}
    )

    assert response.status_code == 202
    assert [address["address"] for address in response.json()["to"]] == [ANN.address]
    assert [address["address"] for address in response.json()["cc"]] == [
        BEN.address,
        "cy@client.test",
    ]
    assert response.json()["subject"] == "Re: Team"


async def test_replying_to_the_owners_own_last_message_goes_to_its_recipients(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    thread, _ = await insert_thread(
        ws, mailbox, {"direction": "sent", "from_": OWNER, "to": [ANN], "subject": "Follow-up"}
    )

    response = await post_to_thread(api, ws.auth, thread.id, "reply", {"body_text": "Bump"})

    assert response.status_code == 202
    assert response.json()["to"] == [{"address": ANN.address, "name": ANN.name}]


async def test_inbound_header_values_are_made_single_line(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    thread, _ = await insert_thread(
        ws,
        mailbox,
        from_ann(
            subject="Offer\r\nBcc: victim@else.test",
            from_=Address(address="ann@client.test", name="Ann\nBcc: x@y.test"),
        ),
    )

    response = await post_to_thread(api, ws.auth, thread.id, "reply", {"body_text": "No"})

    assert response.status_code == 202
    assert response.json()["subject"] == "Re: Offer Bcc: victim@else.test"
    assert response.json()["to"][0]["name"] == "Ann Bcc: x@y.test"


@pytest.mark.parametrize(
    ("field", "value"),
    [("subject", "Hi\r\nBcc: victim@else.test"), ("subject", "Hi\nthere"), ("subject", "Hi\x00")],
)
async def test_line_breaks_in_header_fields_are_refused(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str, field: str, value: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    body = {
        "mailbox_id": mailbox.id,
        "to": [{"address": ANN.address}],
        "subject": "Hi",
        "body_text": "Hello",
        field: value,
    }

    response = await post_send_request(api, ws.auth, body)

    assert response.status_code == 422
    assert response.json()["invalid_params"][0]["name"] == f"body.{field}"
    assert await ws.store.send_requests.count() == 0


async def test_line_breaks_in_recipient_names_are_refused(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    body = {
        "mailbox_id": mailbox.id,
        "subject": "Hi",
        "body_text": "Hello",
        "to": [{"address": ANN.address, "name": "Ann\r\nBcc: victim@else.test"}],
    }

    response = await post_send_request(api, ws.auth, body)

    assert response.status_code == 422
    assert response.json()["invalid_params"][0]["name"] == "body.to.0.name"


async def test_compose_stores_and_publishes_a_new_message_and_it_can_be_read_back(
    api: httpx.AsyncClient,
    ws: ApiWorkspace,
    secret_key: str,
    send_requests: aio_pika.abc.AbstractQueue,
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)

    response = await post_send_request(
        api,
        ws.auth,
        {
            "mailbox_id": mailbox.id,
            "to": [{"address": "Ann@Client.test", "name": "Ann"}],
            "bcc": [{"address": BEN.address}],
            "subject": "Welcome",
            "body_text": "Hello",
        },
    )
    read = await api.get(f"/v1/send-requests/{response.json()['id']}", headers=ws.auth)

    assert response.status_code == 202, response.text
    assert response.json()["to"] == [{"address": "ann@client.test", "name": "Ann"}]
    assert response.json()["thread_id"] is None
    assert read.status_code == 200
    assert read.json() == response.json()
    published = await eventually(lambda: drain(send_requests), what="SendRequested")
    assert [event["data"]["send_request_id"] for event in published] == [response.json()["id"]]


async def test_a_disconnected_mailbox_cannot_send(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key, status={"state": "disconnected"})
    thread, _ = await insert_thread(ws, mailbox, from_ann(subject="Hello"))

    reply = await post_to_thread(api, ws.auth, thread.id, "reply", {"body_text": "Hi"})
    compose = await post_send_request(api, ws.auth, compose_to_ann(mailbox.id))

    assert reply.status_code == 409
    assert compose.status_code == 409
    assert await ws.store.send_requests.count() == 0


async def test_another_workspace_cannot_reply_on_a_thread_or_use_a_mailbox(
    api: httpx.AsyncClient, ws: ApiWorkspace, other_ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    thread, _ = await insert_thread(ws, mailbox, from_ann(subject="Hello"))
    mine = await post_to_thread(api, ws.auth, thread.id, "reply", {"body_text": "Hi"})

    reply = await post_to_thread(api, other_ws.auth, thread.id, "reply", {"body_text": "Hi"})
    compose = await post_send_request(api, other_ws.auth, compose_to_ann(mailbox.id))
    read = await api.get(f"/v1/send-requests/{mine.json()['id']}", headers=other_ws.auth)

    assert reply.status_code == 404
    assert compose.status_code == 422
    assert compose.json()["invalid_params"][0]["name"] == "body.mailbox_id"
    assert read.status_code == 404
    assert await other_ws.store.send_requests.count() == 0
