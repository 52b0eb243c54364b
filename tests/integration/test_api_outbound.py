"""Sending through the api beyond a plain reply: attachments, Cc/Bcc, HTML, aliases as From,
scheduling and cancelling, forwards, per-mailbox settings, XOAUTH2 accounts; and the send
service delivering what the api stored."""

import asyncio
import functools
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.mail import Address
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.send_outbox import SendOutbox, send_request_id
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import SendRequestDocument
from mailsync_shared.storage.raw_messages import store_raw
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
    api_settings,
    bearer,
    create_workspace,
    invite,
    other_ws_fixture,
    running_api,
    system_key,
    ws_fixture,
)
from tests.integration.conftest_send import (  # noqa: F401  (fixtures register by name)
    SendProcess,
    ready_account,
    send_service_fixture,
)
from tests.integration.test_api_replies import (
    from_ann,
    insert_mailbox,
    insert_thread,
    post_send_request,
    post_to_thread,
)
from tests.support.infra import Infra
from tests.support.mail import MailAccount, fetch_all
from tests.support.polling import eventually
from tests.support.smtp_faults import FaultySmtpServer
from tests.support.token_endpoint import TokenEndpoint

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS"),
]

ANN = {"address": "ann@client.test", "name": "Ann"}
SMALL_LIMIT = 4096


async def upload(
    api: httpx.AsyncClient,
    ws: ApiWorkspace,
    data: bytes,
    filename: str = "notes.txt",
    content_type: str = "text/plain; charset=utf-8",
) -> httpx.Response:
    return await api.post(
        "/v1/attachments",
        params={"filename": filename},
        content=data,
        headers={**ws.auth, "Content-Type": content_type},
    )


async def uploaded_id(api: httpx.AsyncClient, ws: ApiWorkspace, data: bytes, **kw: str) -> str:
    response = await upload(api, ws, data, **kw)
    assert response.status_code == 201, response.text
    upload_id: str = response.json()["id"]
    return upload_id


def compose_body(mailbox_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "mailbox_id": mailbox_id,
        "to": [ANN],
        "subject": "Proposal",
        "body_text": "Hello Ann",
        **fields,
    }


async def stored_request(ws: ApiWorkspace, request_id: str) -> SendRequestDocument:
    document = await ws.store.send_requests.find_one({"_id": request_id})
    assert document is not None
    return SendRequestDocument.from_document(document)


async def verified_alias(
    api: httpx.AsyncClient, ws: ApiWorkspace, mailbox_id: str, address: str
) -> None:
    added = await api.post(
        f"/v1/mailboxes/{mailbox_id}/aliases",
        json={"address": address, "name": "Acme Sales"},
        headers=ws.auth,
    )
    assert added.status_code == 201, added.text
    verified = await api.post(
        f"/v1/mailboxes/{mailbox_id}/aliases/{address}/verify", headers=ws.auth
    )
    assert verified.status_code == 200, verified.text


@pytest.fixture(scope="module", name="small_api")
async def small_api_fixture(
    infra: Infra, secret_key: str, api_db: AsyncDatabase[Document]
) -> AsyncIterator[httpx.AsyncClient]:
    """The api with a small attachment cap, so the caps are tested without megabytes."""
    settings = api_settings(infra, secret_key, max_attachments_bytes=SMALL_LIMIT)
    async for client in running_api(settings):
        yield client


# --- attachments ---------------------------------------------------------------------------


async def test_an_upload_answers_an_id_with_its_name_type_and_size(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    response = await upload(
        api, ws, b"quarterly numbers\n", filename="numbers.csv", content_type="text/csv"
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["filename"] == "numbers.csv"
    assert body["content_type"] == "text/csv"
    assert body["size"] == len(b"quarterly numbers\n")
    stored = await ws.store.collection("attachment_uploads").find_one({"_id": body["id"]})
    assert stored is not None
    assert stored["filename"] == "numbers.csv"


async def test_an_upload_over_the_cap_is_refused_with_413(
    small_api: httpx.AsyncClient, api_db: AsyncDatabase[Document]
) -> None:
    ws = await create_workspace(small_api, api_db, "Caps")

    response = await upload(small_api, ws, b"x" * (SMALL_LIMIT + 1))
    empty = await upload(small_api, ws, b"")

    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert empty.status_code == 422
    assert await ws.store.collection("attachment_uploads").count() == 0


async def test_attachments_over_the_total_cap_are_refused_with_413(
    small_api: httpx.AsyncClient, api_db: AsyncDatabase[Document], secret_key: str
) -> None:
    ws = await create_workspace(small_api, api_db, "Caps total")
    mailbox = await insert_mailbox(ws, secret_key)
    first = await uploaded_id(small_api, ws, b"a" * 3000)
    second = await uploaded_id(small_api, ws, b"b" * 3000)

    response = await post_send_request(
        small_api, ws.auth, compose_body(mailbox.id, attachments=[first, second])
    )

    assert response.status_code == 413, response.text
    assert response.json()["type"].endswith("/attachments-too-large")
    assert await ws.store.send_requests.count() == 0


async def test_the_same_file_in_two_workspaces_is_stored_for_each_and_ids_stay_in_theirs(
    api: httpx.AsyncClient, ws: ApiWorkspace, other_ws: ApiWorkspace, secret_key: str
) -> None:
    data = f"shared {uuid.uuid4().hex}".encode()
    mine = await uploaded_id(api, ws, data)
    theirs = await upload(api, other_ws, data)
    other_mailbox = await insert_mailbox(other_ws, secret_key)

    using_mine = await post_send_request(
        api, other_ws.auth, compose_body(other_mailbox.id, attachments=[mine])
    )

    assert theirs.status_code == 201, theirs.text
    assert using_mine.status_code == 422
    assert using_mine.json()["invalid_params"][0]["name"] == "body.attachments.0"


# --- compose -------------------------------------------------------------------------------


async def test_compose_stores_cc_bcc_sanitized_html_attachments_and_a_verified_alias_as_from(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    await verified_alias(api, ws, mailbox.id, "sales@acme.test")
    attachment = await uploaded_id(
        api, ws, b"%PDF-1.4 fake", filename="offer.pdf", content_type="application/pdf"
    )

    response = await post_send_request(
        api,
        ws.auth,
        compose_body(
            mailbox.id,
            from_address="Sales@Acme.test",
            cc=[{"address": "ben@client.test"}, ANN],
            bcc=[{"address": "boss@acme.test"}],
            body_html='<p onclick="steal()">Hi <b>Ann</b></p><script>alert(1)</script>',
            attachments=[attachment],
        ),
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["from"] == {"address": "sales@acme.test", "name": "Acme Sales"}
    assert [a["address"] for a in body["cc"]] == ["ben@client.test"], "Ann is already in To"
    assert [a["address"] for a in body["bcc"]] == ["boss@acme.test"]
    assert body["body_html"] == "<p>Hi <b>Ann</b></p>"
    assert body["attachments"] == [
        {"filename": "offer.pdf", "content_type": "application/pdf", "size": 13}
    ]
    stored = await stored_request(ws, body["id"])
    assert stored.body_html == "<p>Hi <b>Ann</b></p>"
    assert [ref.filename for ref in stored.attachments] == ["offer.pdf"]
    assert stored.from_.address == "sales@acme.test"


async def test_from_must_be_the_mailbox_or_a_verified_alias(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    added = await api.post(
        f"/v1/mailboxes/{mailbox.id}/aliases",
        json={"address": "unverified@acme.test"},
        headers=ws.auth,
    )

    unverified = await post_send_request(
        api, ws.auth, compose_body(mailbox.id, from_address="unverified@acme.test")
    )
    stranger = await post_send_request(
        api, ws.auth, compose_body(mailbox.id, from_address="ceo@bank.test")
    )
    own = await post_send_request(
        api, ws.auth, compose_body(mailbox.id, from_address=mailbox.address)
    )

    assert added.status_code == 201
    assert added.json()["aliases"] == [
        {
            "address": "unverified@acme.test",
            "name": "",
            "verified": False,
            "verified_at": None,
            "verified_by": None,
        }
    ]
    for refused in (unverified, stranger):
        assert refused.status_code == 422
        assert refused.json()["invalid_params"][0]["name"] == "body.from_address"
    assert own.status_code == 202
    assert await ws.store.send_requests.count() == 1


async def test_only_an_admin_verifies_an_alias_and_the_owner_can_remove_it(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    member = await invite(api, ws, "member")
    await api.post(
        f"/v1/mailboxes/{mailbox.id}/aliases", json={"address": "sales@acme.test"}, headers=ws.auth
    )

    by_member = await api.post(
        f"/v1/mailboxes/{mailbox.id}/aliases/sales@acme.test/verify",
        headers=bearer(member["token"]),
    )
    duplicate = await api.post(
        f"/v1/mailboxes/{mailbox.id}/aliases", json={"address": "SALES@acme.test"}, headers=ws.auth
    )
    own_address = await api.post(
        f"/v1/mailboxes/{mailbox.id}/aliases", json={"address": mailbox.address}, headers=ws.auth
    )
    removed = await api.delete(
        f"/v1/mailboxes/{mailbox.id}/aliases/sales@acme.test", headers=ws.auth
    )
    missing = await api.post(
        f"/v1/mailboxes/{mailbox.id}/aliases/sales@acme.test/verify", headers=ws.auth
    )

    assert by_member.status_code == 403
    assert duplicate.status_code == 409
    assert own_address.status_code == 422
    assert removed.status_code == 200
    assert removed.json()["aliases"] == []
    assert missing.status_code == 404


async def test_recipients_are_validated(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    many = [{"address": f"r{index}@client.test"} for index in range(60)]

    not_an_address = await post_send_request(
        api, ws.auth, compose_body(mailbox.id, cc=[{"address": "not an address"}])
    )
    not_ascii = await post_send_request(
        api, ws.auth, compose_body(mailbox.id, bcc=[{"address": "jürgen@client.test"}])
    )
    too_many = await post_send_request(api, ws.auth, compose_body(mailbox.id, cc=many, bcc=many))
    nobody = await post_send_request(api, ws.auth, compose_body(mailbox.id, to=[]))

    assert not_an_address.status_code == 422
    assert not_an_address.json()["invalid_params"][0]["name"] == "body.cc.0.address"
    assert not_ascii.status_code == 422
    assert "bcc.0" in not_ascii.json()["detail"]
    assert too_many.status_code == 422
    assert nobody.status_code == 422
    assert await ws.store.send_requests.count() == 0


CRLF = "x\r\nBcc: victim@else.test"


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        ("compose", "from_address", f"sales@acme.test{CRLF}"),
        ("compose", "cc", [{"address": "ben@client.test", "name": CRLF}]),
        ("compose", "bcc", [{"address": f"ben@client.test{CRLF}"}]),
        ("compose", "attachments", [CRLF]),
        ("reply", "cc", [{"address": "ben@client.test", "name": CRLF}]),
        ("reply", "bcc", [{"address": "ben@client.test", "name": "Ben\n"}]),
        ("reply", "from_address", f"x@acme.test\n{CRLF}"),
        ("forward", "subject", f"Fwd{CRLF}"),
        ("forward", "message_id", f"<a@b>{CRLF}"),
        ("forward", "to", [{"address": "ben@client.test", "name": CRLF}]),
        ("forward", "from_address", "a@acme.test\r"),
    ],
)
async def test_line_breaks_in_new_header_fields_are_refused(
    api: httpx.AsyncClient,
    ws: ApiWorkspace,
    secret_key: str,
    path: str,
    field: str,
    value: Any,
) -> None:
    mailbox = await insert_mailbox(ws, secret_key, visibility="workspace")
    thread, _ = await insert_thread(ws, mailbox, from_ann(subject="Hello"))
    if path == "compose":
        url, body = "/v1/send-requests", compose_body(mailbox.id)
    elif path == "reply":
        url, body = f"/v1/threads/{thread.id}/reply", {"body_text": "Hi"}
    else:
        url, body = f"/v1/threads/{thread.id}/forward", {"to": [ANN], "body_text": "FYI"}

    response = await api.post(url, json={**body, field: value}, headers=ws.auth)

    assert response.status_code == 422, response.text
    assert response.json()["invalid_params"][0]["name"].startswith(f"body.{field}")
    assert await ws.store.send_requests.count() == 0


async def test_line_breaks_in_attachment_names_and_aliases_are_refused(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)

    filename = await upload(api, ws, b"data", filename=f"a.txt{CRLF}")
    alias_name = await api.post(
        f"/v1/mailboxes/{mailbox.id}/aliases",
        json={"address": "sales@acme.test", "name": CRLF},
        headers=ws.auth,
    )
    alias_address = await api.post(
        f"/v1/mailboxes/{mailbox.id}/aliases",
        json={"address": f"sales@acme.test{CRLF}"},
        headers=ws.auth,
    )

    assert filename.status_code == 422
    assert filename.json()["invalid_params"][0]["name"] == "query.filename"
    assert alias_name.status_code == 422
    assert alias_address.status_code == 422
    assert await ws.store.collection("attachment_uploads").count() == 0
    assert (await ws.store.mailboxes.find_one({"_id": mailbox.id}) or {})["aliases"] == []


# --- scheduling, cancelling, reading -------------------------------------------------------


async def test_a_scheduled_request_is_stored_with_its_time_and_cancelled_once(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    send_at = (utcnow() + timedelta(hours=2)).replace(microsecond=0)

    past = await post_send_request(
        api,
        ws.auth,
        compose_body(mailbox.id, send_at=(utcnow() - timedelta(minutes=1)).isoformat()),
    )
    naive = await post_send_request(
        api, ws.auth, compose_body(mailbox.id, send_at="2030-01-01T10:00:00")
    )
    scheduled = await post_send_request(
        api, ws.auth, compose_body(mailbox.id, send_at=send_at.isoformat())
    )
    request_id = scheduled.json()["id"]
    stored = await stored_request(ws, request_id)
    cancelled = await api.post(f"/v1/send-requests/{request_id}/cancel", headers=ws.auth)
    again = await api.post(f"/v1/send-requests/{request_id}/cancel", headers=ws.auth)
    read = await api.get(f"/v1/send-requests/{request_id}", headers=ws.auth)

    assert past.status_code == 422
    assert past.json()["invalid_params"][0]["name"] == "body.send_at"
    assert naive.status_code == 422
    assert scheduled.status_code == 202, scheduled.text
    assert scheduled.json()["send_at"].startswith(send_at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert stored.send_at == send_at
    assert stored.next_attempt_at == send_at
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert cancelled.json()["cancelled_at"] is not None
    assert again.status_code == 200
    assert read.json()["state"] == "cancelled"


async def test_a_mailbox_disconnected_through_the_api_takes_no_request_after(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    """The api reuses a mailbox it read for a moment, but not past its own change to it."""
    mailbox = await insert_mailbox(ws, secret_key)
    accepted = await post_send_request(api, ws.auth, compose_body(mailbox.id))
    disconnected = await api.post(f"/v1/mailboxes/{mailbox.id}/disconnect", headers=ws.auth)
    refused = await post_send_request(api, ws.auth, compose_body(mailbox.id))

    assert accepted.status_code == 202, accepted.text
    assert disconnected.status_code == 200, disconnected.text
    assert refused.status_code == 409, refused.text
    assert "disconnected" in refused.json()["detail"]


@pytest.mark.parametrize("state", ["sending", "sent", "failed", "unknown"])
async def test_a_request_past_queued_cannot_be_cancelled(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str, state: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    created = await post_send_request(api, ws.auth, compose_body(mailbox.id))
    request_id = created.json()["id"]
    await ws.store.send_requests.update_one(
        {"_id": request_id}, {"$set": {"state": state, "error": "550 5.1.1 User unknown"}}
    )

    response = await api.post(f"/v1/send-requests/{request_id}/cancel", headers=ws.auth)
    read = await api.get(f"/v1/send-requests/{request_id}", headers=ws.auth)

    assert response.status_code == 409
    assert response.json()["state"] == state
    assert state in response.json()["detail"]
    assert read.json()["state"] == state
    assert read.json()["error"] == "550 5.1.1 User unknown"


async def test_a_request_whose_attempt_began_is_shown_sending_and_cannot_be_cancelled(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    """A send attempt writes only its claim when it starts; the api reads the state from it."""
    mailbox = await insert_mailbox(ws, secret_key)
    created = await post_send_request(api, ws.auth, compose_body(mailbox.id))
    request_id = created.json()["id"]
    document = await ws.store.send_requests.find_one({"_id": request_id})
    assert document is not None
    outbox = SendOutbox(ws.store, claim_timeout=timedelta(minutes=5))
    claimed = await outbox.claim(SendRequestDocument.from_document(document))
    assert claimed is not None

    read = await api.get(f"/v1/send-requests/{request_id}", headers=ws.auth)
    sending = await api.get("/v1/send-requests", params={"state": "sending"}, headers=ws.auth)
    queued = await api.get("/v1/send-requests", params={"state": "queued"}, headers=ws.auth)
    cancel = await api.post(f"/v1/send-requests/{request_id}/cancel", headers=ws.auth)

    stored = await ws.store.send_requests.find_one({"_id": request_id})
    assert stored is not None
    assert stored["state"] == "queued"
    assert read.json()["state"] == "sending"
    assert read.json()["attempts"] == 1
    assert [item["id"] for item in sending.json()["items"]] == [request_id]
    assert queued.json()["items"] == []
    assert cancel.status_code == 409
    assert cancel.json()["state"] == "sending"


async def test_cancelling_an_unknown_request_is_404(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    response = await api.post("/v1/send-requests/nope/cancel", headers=ws.auth)

    assert response.status_code == 404


async def test_send_requests_are_listed_newest_first_by_state_with_a_cursor(
    api: httpx.AsyncClient, ws: ApiWorkspace, other_ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    ids = []
    for index in range(3):
        created = await post_send_request(
            api, ws.auth, compose_body(mailbox.id, subject=f"S{index}")
        )
        ids.append(created.json()["id"])
        await asyncio.sleep(0.01)
    await api.post(f"/v1/send-requests/{ids[1]}/cancel", headers=ws.auth)

    first = await api.get("/v1/send-requests", params={"limit": 1}, headers=ws.auth)
    second = await api.get(
        "/v1/send-requests",
        params={"limit": 5, "cursor": first.json()["next_cursor"]},
        headers=ws.auth,
    )
    queued = await api.get("/v1/send-requests", params={"state": "queued"}, headers=ws.auth)
    cancelled = await api.get("/v1/send-requests", params={"state": "cancelled"}, headers=ws.auth)
    bad_state = await api.get("/v1/send-requests", params={"state": "lost"}, headers=ws.auth)
    others = await api.get("/v1/send-requests", headers=other_ws.auth)

    assert [item["id"] for item in first.json()["items"]] == [ids[2]]
    assert [item["id"] for item in second.json()["items"]] == [ids[1], ids[0]]
    assert second.json().get("next_cursor") is None
    assert [item["id"] for item in queued.json()["items"]] == [ids[2], ids[0]]
    assert [item["id"] for item in cancelled.json()["items"]] == [ids[1]]
    assert bad_state.status_code == 422
    assert others.json()["items"] == []


async def test_one_idempotency_key_makes_one_request_even_when_posted_at_once(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)
    body = compose_body(mailbox.id, idempotency_key="quote-7")

    answers = await asyncio.gather(*(post_send_request(api, ws.auth, body) for _ in range(4)))

    assert sorted(answer.status_code for answer in answers) == [200, 200, 200, 202]
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert answers[0].json()["id"] == send_request_id(ws.id, f"user:{ws.owner_user_id}", "quote-7")
    assert await ws.store.send_requests.count() == 1


async def test_only_the_owner_sends_from_a_mailbox_and_roles_follow_nothing_more(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    owners = await insert_mailbox(ws, secret_key)
    member = await invite(api, ws, "member")
    admin = await invite(api, ws, "admin")
    admin_key = bearer(await system_key(api, ws, ["read", "send", "admin"]))
    members = await insert_mailbox(
        ws, secret_key, address="member@acme.test", owner_user_id=member["id"]
    )
    shared = await insert_mailbox(ws, secret_key, address="team@acme.test", visibility="workspace")
    systems = await insert_mailbox(ws, secret_key, address="crm@acme.test", owner_user_id=None)
    as_member, as_admin = bearer(member["token"]), bearer(admin["token"])

    refused = await post_send_request(api, as_member, compose_body(owners.id))
    own = await post_send_request(api, as_member, compose_body(members.id))
    by_admin = await post_send_request(api, as_admin, compose_body(owners.id))
    by_admin_key = await post_send_request(api, admin_key, compose_body(owners.id))
    by_owner = await post_send_request(api, ws.auth, compose_body(owners.id))
    on_shared = await post_send_request(api, ws.auth, compose_body(shared.id))
    owner_on_systems = await post_send_request(api, ws.auth, compose_body(systems.id))
    key_on_systems = await post_send_request(api, admin_key, compose_body(systems.id))
    owner_id, on_shared_id = by_owner.json()["id"], on_shared.json()["id"]

    listed = await api.get("/v1/send-requests", headers=as_member)
    of_owner = await api.get(
        "/v1/send-requests", params={"mailbox_id": owners.id}, headers=as_member
    )
    hidden = await api.get(f"/v1/send-requests/{owner_id}", headers=as_member)
    hidden_to_admin = await api.get(f"/v1/send-requests/{owner_id}", headers=as_admin)
    cancel_hidden = await api.post(f"/v1/send-requests/{owner_id}/cancel", headers=as_member)
    cancel_by_admin = await api.post(f"/v1/send-requests/{owner_id}/cancel", headers=as_admin)
    cancel_shared = await api.post(f"/v1/send-requests/{on_shared_id}/cancel", headers=as_admin)
    admin_lists = await api.get("/v1/send-requests", headers=as_admin)

    for refusal in (refused, by_admin, by_admin_key, owner_on_systems):
        assert refusal.status_code == 403, refusal.text
        assert refusal.json()["type"].endswith("/forbidden")
    for accepted in (own, by_owner, on_shared, key_on_systems):
        assert accepted.status_code == 202, accepted.text
    assert {item["id"] for item in listed.json()["items"]} == {own.json()["id"], on_shared_id}
    assert of_owner.json()["items"] == []
    assert (hidden.status_code, hidden_to_admin.status_code) == (404, 404)
    assert (cancel_hidden.status_code, cancel_by_admin.status_code) == (404, 404)
    assert cancel_shared.status_code == 403
    assert {item["id"] for item in admin_lists.json()["items"]} == {on_shared_id}
    assert await ws.store.send_requests.count() == 4


async def test_an_idempotency_key_belongs_to_the_caller_who_used_it(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    owners = await insert_mailbox(ws, secret_key, visibility="workspace")
    thread, _ = await insert_thread(ws, owners, from_ann(subject="Pricing"))
    member = await invite(api, ws, "member")
    members = await insert_mailbox(
        ws, secret_key, address="member@acme.test", owner_user_id=member["id"]
    )
    as_member = bearer(member["token"])
    secret = compose_body(owners.id, subject="Secret plan", idempotency_key="K")

    first = await post_send_request(api, ws.auth, secret)
    replayed = await post_send_request(api, ws.auth, secret)
    # With someone else's key: from the owner's mailbox, then from their own.
    theirs_unused = await post_send_request(
        api, as_member, compose_body(owners.id, idempotency_key="never-used")
    )
    theirs_used = await post_send_request(
        api, as_member, compose_body(owners.id, idempotency_key="K")
    )
    reply_used = await post_to_thread(
        api, as_member, thread.id, "reply", {"body_text": "x", "idempotency_key": "K"}
    )
    reply_unused = await post_to_thread(
        api, as_member, thread.id, "reply", {"body_text": "x", "idempotency_key": "never-used"}
    )
    forward_used = await post_to_thread(
        api, as_member, thread.id, "forward", {"to": [ANN], "idempotency_key": "K"}
    )
    forward_unused = await post_to_thread(
        api, as_member, thread.id, "forward", {"to": [ANN], "idempotency_key": "never-used"}
    )
    own_with_k = await post_send_request(
        api, as_member, compose_body(members.id, subject="Mine", idempotency_key="K")
    )

    assert (first.status_code, replayed.status_code) == (202, 200)
    assert replayed.json()["id"] == first.json()["id"]
    for used, unused in (
        (theirs_used, theirs_unused),
        (reply_used, reply_unused),
        (forward_used, forward_unused),
    ):
        assert used.status_code == unused.status_code == 403, (used.text, unused.text)
        assert used.json() == unused.json()
        assert "Secret plan" not in used.text
    assert own_with_k.status_code == 202, own_with_k.text
    assert own_with_k.json()["id"] != first.json()["id"]
    assert own_with_k.json()["subject"] == "Mine"
    assert own_with_k.json()["id"] == send_request_id(ws.id, f"user:{member['id']}", "K")
    assert await ws.store.send_requests.count() == 2


# --- replies and forwards ------------------------------------------------------------------


async def test_reply_all_takes_extra_cc_bcc_html_and_attachments(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key, visibility="workspace")
    ben = Address(address="ben@client.test")
    thread, messages = await insert_thread(ws, mailbox, from_ann(subject="Team", cc=[ben]))
    attachment = await uploaded_id(api, ws, b"agenda", filename="agenda.txt")

    response = await post_to_thread(
        api,
        ws.auth,
        thread.id,
        "reply",
        {
            "body_text": "See attached",
            "body_html": "<p>See <a href='javascript:x()'>attached</a></p>",
            "reply_all": True,
            "cc": [{"address": "cy@client.test"}, {"address": "ben@client.test"}],
            "bcc": [{"address": "boss@acme.test"}],
            "attachments": [attachment],
        },
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert [a["address"] for a in body["to"]] == ["ann@client.test"]
    assert [a["address"] for a in body["cc"]] == ["ben@client.test", "cy@client.test"]
    assert [a["address"] for a in body["bcc"]] == ["boss@acme.test"]
    assert "javascript" not in body["body_html"]
    assert body["in_reply_to"] == [messages[-1].message_id]
    assert [a["filename"] for a in body["attachments"]] == ["agenda.txt"]


async def test_forward_attaches_the_chosen_message_and_links_the_thread(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key, visibility="workspace")
    thread, messages = await insert_thread(
        ws, mailbox, from_ann(subject="Prices"), from_ann(subject="Re: Prices")
    )
    raw_ids = []
    for message in messages:
        raw_id = await store_raw(
            ws.store, f"Subject: {message.subject}\r\n\r\n{message.id}\r\n".encode()
        )
        await ws.store.messages.update_one({"_id": message.id}, {"$set": {"raw_id": raw_id}})
        raw_ids.append(raw_id)

    default = await post_to_thread(
        api,
        ws.auth,
        thread.id,
        "forward",
        {"to": [{"address": "finance@acme.test"}], "body_text": "FYI"},
    )
    chosen = await post_to_thread(
        api,
        ws.auth,
        thread.id,
        "forward",
        {
            "to": [{"address": "finance@acme.test"}],
            "bcc": [{"address": "boss@acme.test"}],
            "message_id": messages[0].message_id,
            "subject": "Have a look",
        },
    )
    unknown = await post_to_thread(
        api, ws.auth, thread.id, "forward", {"to": [ANN], "message_id": "<not-here@client.test>"}
    )

    assert default.status_code == 202, default.text
    assert default.json()["subject"] == "Fwd: Re: Prices"
    assert default.json()["forward_of"] == messages[-1].message_id
    assert default.json()["thread_id"] == thread.id
    assert default.json()["in_reply_to"] == []
    stored = await stored_request(ws, default.json()["id"])
    assert stored.forward_of is not None
    assert stored.forward_of.raw_id == raw_ids[-1]
    assert chosen.status_code == 202, chosen.text
    assert chosen.json()["subject"] == "Have a look"
    assert (await stored_request(ws, chosen.json()["id"])).forward_of.raw_id == raw_ids[0]  # type: ignore[union-attr]
    assert unknown.status_code == 422
    assert unknown.json()["invalid_params"][0]["name"] == "body.message_id"


async def test_a_forward_counts_the_original_against_the_size_cap(
    small_api: httpx.AsyncClient, api_db: AsyncDatabase[Document], secret_key: str
) -> None:
    ws = await create_workspace(small_api, api_db, "Forward caps")
    mailbox = await insert_mailbox(ws, secret_key, visibility="workspace")
    thread, messages = await insert_thread(ws, mailbox, from_ann(subject="Big"))
    raw_id = await store_raw(ws.store, f"Subject: {ws.id}\r\n\r\n".encode() + b"z" * SMALL_LIMIT)
    await ws.store.messages.update_one({"_id": messages[0].id}, {"$set": {"raw_id": raw_id}})

    response = await post_to_thread(small_api, ws.auth, thread.id, "forward", {"to": [ANN]})

    assert response.status_code == 413
    assert await ws.store.send_requests.count() == 0


async def test_a_message_whose_bytes_are_gone_cannot_be_forwarded(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key, visibility="workspace")
    thread, _ = await insert_thread(ws, mailbox, from_ann(subject="Gone"))

    response = await post_to_thread(api, ws.auth, thread.id, "forward", {"to": [ANN]})

    assert response.status_code == 409


async def test_forwarding_needs_full_access_to_the_thread(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key, visibility="metadata")
    thread, messages = await insert_thread(ws, mailbox, from_ann(subject="Private deal"))
    raw_id = await store_raw(ws.store, f"Subject: {ws.id}\r\n\r\nsecret\r\n".encode())
    await ws.store.messages.update_one({"_id": messages[0].id}, {"$set": {"raw_id": raw_id}})
    member = await invite(api, ws, "member")

    response = await post_to_thread(
        api,
        bearer(member["token"]),
        thread.id,
        "forward",
        {"to": [{"address": "me@elsewhere.test"}]},
    )

    assert response.status_code == 403, response.text
    assert await ws.store.send_requests.count() == 0


# --- mailbox settings ----------------------------------------------------------------------


async def test_the_send_rate_is_a_mailbox_setting_and_null_restores_the_default(
    api: httpx.AsyncClient, ws: ApiWorkspace, secret_key: str
) -> None:
    mailbox = await insert_mailbox(ws, secret_key)

    set_ = await api.patch(
        f"/v1/mailboxes/{mailbox.id}", json={"send_rate_per_minute": 12}, headers=ws.auth
    )
    zero = await api.patch(
        f"/v1/mailboxes/{mailbox.id}", json={"send_rate_per_minute": 0}, headers=ws.auth
    )
    stored = await ws.store.mailboxes.find_one({"_id": mailbox.id})
    reset = await api.patch(
        f"/v1/mailboxes/{mailbox.id}", json={"send_rate_per_minute": None}, headers=ws.auth
    )

    assert set_.status_code == 200, set_.text
    assert set_.json()["send_rate_per_minute"] == 12
    assert stored is not None
    assert stored["send_rate_per_minute"] == 12
    assert zero.status_code == 422
    assert reset.json()["send_rate_per_minute"] is None


@pytest.fixture
def token_endpoint() -> Iterator[TokenEndpoint]:
    with TokenEndpoint({"refresh-secret"}) as endpoint:
        yield endpoint


@pytest.fixture
def oauth_smtp(infra: Infra) -> Iterator[FaultySmtpServer]:
    """An SMTP server that takes XOAUTH2 with the access tokens the endpoint hands out."""
    server = FaultySmtpServer(infra, tokens={"access-1", "access-2", "access-3"}).start()
    try:
        yield server
    finally:
        server.stop()


def oauth_mailbox_body(
    infra: Infra,
    owner: MailAccount,
    smtp: FaultySmtpServer,
    endpoint: TokenEndpoint,
    **smtp_fields: Any,
) -> dict[str, Any]:
    return {
        "address": owner.address,
        "imap": {
            "host": infra.imap_host,
            "port": infra.imap_port,
            "security": "none",
            "username": owner.address,
            "password": owner.password,
        },
        "smtp": {
            "host": smtp.host,
            "port": smtp.port,
            "security": "none",
            "username": owner.address,
            "auth": "xoauth2",
            "refresh_token": "refresh-secret",
            "token_endpoint": endpoint.url,
            "client_id": "mailsync-test",
            "client_secret": "client-secret",
            "scope": "https://mail.test/",
            **smtp_fields,
        },
        "send_rate_per_minute": 20,
    }


async def test_an_xoauth2_account_is_checked_by_refreshing_and_logging_in_then_stored_encrypted(
    api: httpx.AsyncClient,
    ws: ApiWorkspace,
    infra: Infra,
    secret_key: str,
    token_endpoint: TokenEndpoint,
    oauth_smtp: FaultySmtpServer,
) -> None:
    owner = await ready_account(infra, "acme.test", "oauth")

    response = await api.post(
        "/v1/mailboxes",
        json=oauth_mailbox_body(infra, owner, oauth_smtp, token_endpoint),
        headers=ws.auth,
    )

    assert response.status_code == 201, response.text
    assert "refresh-secret" not in response.text
    assert "client-secret" not in response.text
    assert response.json()["smtp"]["auth"] == "xoauth2"
    assert response.json()["send_rate_per_minute"] == 20
    assert token_endpoint.forms[0]["grant_type"] == ["refresh_token"]
    assert token_endpoint.forms[0]["client_secret"] == ["client-secret"]
    assert token_endpoint.forms[0]["scope"] == ["https://mail.test/"]
    assert oauth_smtp.xoauth2_attempts == 1
    stored = await ws.store.mailboxes.find_one({"_id": response.json()["id"]})
    assert stored is not None
    assert "refresh-secret" not in str(stored)
    assert "client-secret" not in str(stored)
    cipher = CredentialCipher(SecretStr(secret_key))
    smtp = stored["smtp"]
    assert smtp["auth"] == "xoauth2"
    assert cipher.decrypt(smtp["secret_encrypted"]) == "refresh-secret"
    assert cipher.decrypt(smtp["client_secret_encrypted"]) == "client-secret"
    assert (smtp["token_endpoint"], smtp["client_id"]) == (token_endpoint.url, "mailsync-test")
    assert stored["imap"]["auth"] == "password"


async def test_an_xoauth2_account_whose_grant_is_refused_is_not_stored(
    api: httpx.AsyncClient,
    ws: ApiWorkspace,
    infra: Infra,
    token_endpoint: TokenEndpoint,
    oauth_smtp: FaultySmtpServer,
) -> None:
    owner = await ready_account(infra, "acme.test", "oauth")
    body = oauth_mailbox_body(
        infra, owner, oauth_smtp, token_endpoint, refresh_token="revoked-token"
    )
    incomplete = oauth_mailbox_body(infra, owner, oauth_smtp, token_endpoint)
    del incomplete["smtp"]["client_id"]
    injected = oauth_mailbox_body(infra, owner, oauth_smtp, token_endpoint, scope=f"mail{CRLF}")

    refused = await api.post("/v1/mailboxes", json=body, headers=ws.auth)
    missing = await api.post("/v1/mailboxes", json=incomplete, headers=ws.auth)
    line_break = await api.post("/v1/mailboxes", json=injected, headers=ws.auth)

    assert refused.status_code == 422
    assert refused.json()["type"].endswith("/oauth-refresh-failed")
    assert "invalid_grant" in refused.json()["detail"]
    assert "revoked-token" not in refused.text
    assert oauth_smtp.xoauth2_attempts == 0
    assert missing.status_code == 422
    assert "client_id" in missing.json()["detail"]
    assert line_break.status_code == 422
    assert line_break.json()["invalid_params"][0]["name"] == "body.smtp.scope"
    assert await ws.store.mailboxes.count() == 0


async def test_an_xoauth2_token_the_server_refuses_is_reported_with_its_answer(
    api: httpx.AsyncClient,
    ws: ApiWorkspace,
    infra: Infra,
    token_endpoint: TokenEndpoint,
    oauth_smtp: FaultySmtpServer,
) -> None:
    owner = await ready_account(infra, "acme.test", "oauth")
    oauth_smtp.tokens = set()

    response = await api.post(
        "/v1/mailboxes",
        json=oauth_mailbox_body(infra, owner, oauth_smtp, token_endpoint),
        headers=ws.auth,
    )

    assert response.status_code == 422
    assert response.json()["type"].endswith("/mail-server-login-refused")
    assert response.json()["server"] == "smtp"
    assert "access-1" not in response.text
    assert await ws.store.mailboxes.count() == 0


# --- end to end with the send service ------------------------------------------------------


@pytest.fixture(name="e2e_api")
async def e2e_api_fixture(
    infra: Infra, secret_key: str, service_env: dict[str, str], mongo: AsyncDatabase[Document]
) -> AsyncIterator[tuple[httpx.AsyncClient, AsyncDatabase[Document]]]:
    """The api on the database the send service process reads."""
    settings = api_settings(
        infra, secret_key, mongodb_database=service_env["MAILSYNC_MONGODB_DATABASE"]
    )
    async for client in running_api(settings):
        yield client, mongo


async def connect_owner(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount
) -> str:
    server = {"username": owner.address, "password": owner.password, "security": "none"}
    response = await api.post(
        "/v1/mailboxes",
        json={
            "address": owner.address,
            "display_name": "Olive Owner",
            "imap": {**server, "host": infra.imap_host, "port": infra.imap_port},
            "smtp": {**server, "host": infra.smtp_host, "port": infra.smtp_port},
            "append_to_sent": True,
        },
        headers=ws.auth,
    )
    assert response.status_code == 201, response.text
    mailbox_id: str = response.json()["id"]
    return mailbox_id


async def messages_in(
    infra: Infra, account: MailAccount, folder: str = "INBOX"
) -> list[EmailMessage]:
    raw = await asyncio.to_thread(fetch_all, infra, account, folder)
    return [message_from_bytes(data, policy=policy.default) for data in raw]


async def arrived(infra: Infra, account: MailAccount) -> list[EmailMessage] | None:
    return await messages_in(infra, account) or None


async def state_of(
    api: httpx.AsyncClient, ws: ApiWorkspace, request_id: str, state: str
) -> dict[str, Any]:
    """The request once it settled in `state`; fails at once if it settled in another."""

    async def probe() -> dict[str, Any] | None:
        response = await api.get(f"/v1/send-requests/{request_id}", headers=ws.auth)
        body: dict[str, Any] = response.json()
        return body if body["state"] in (state, "failed", "unknown", "cancelled") else None

    settled = await eventually(probe, timeout=60, what=f"send request {request_id} to settle")
    assert settled["state"] == state, (settled["state"], settled["error"])
    return settled


async def test_composed_mail_reaches_to_cc_and_bcc_with_one_sent_copy_and_no_bcc_header(
    send_service: SendProcess,
    e2e_api: tuple[httpx.AsyncClient, AsyncDatabase[Document]],
    infra: Infra,
) -> None:
    api, db = e2e_api
    ws = await create_workspace(api, db, "E2E send")
    owner = await ready_account(infra, "acme.test", "owner")
    to, cc, bcc = [await ready_account(infra, "client.test", name) for name in ("to", "cc", "bcc")]
    mailbox_id = await connect_owner(api, ws, infra, owner)
    attachment = await uploaded_id(
        api, ws, b"line one\nline two\n", filename="notes.txt", content_type="text/plain"
    )

    response = await post_send_request(
        api,
        ws.auth,
        {
            "mailbox_id": mailbox_id,
            "to": [{"address": to.address, "name": "To Person"}],
            "cc": [{"address": cc.address}],
            "bcc": [{"address": bcc.address}],
            "subject": "Our offer",
            "body_text": "Hello, the offer is attached.",
            "body_html": "<p>Hello, the <b>offer</b> is attached.</p><script>x()</script>",
            "attachments": [attachment],
            "idempotency_key": f"e2e-{uuid.uuid4().hex}",
        },
    )
    assert response.status_code == 202, response.text
    sent = await state_of(api, ws, response.json()["id"], "sent")

    assert sent["sent_at"] is not None
    for account in (to, cc, bcc):
        delivered = await eventually(
            functools.partial(arrived, infra, account), what=f"mail for {account.address}"
        )
        assert len(delivered) == 1
        message = delivered[0]
        assert message["Message-ID"] == response.json()["message_id"]
        assert message["From"] == f"Olive Owner <{owner.address}>"
        assert message["To"] == f"To Person <{to.address}>"
        assert message["Cc"] == cc.address
        assert message["Bcc"] is None
        assert bcc.address not in message.as_string()
        html = message.get_body(("html",))
        assert html is not None
        assert "<b>offer</b>" in html.get_content()
        assert "script" not in html.get_content()
        files = list(message.iter_attachments())
        assert [part.get_filename() for part in files] == ["notes.txt"]
        assert files[0].get_content() == "line one\nline two\n"
    copies = await messages_in(infra, owner, "Sent")
    assert [copy["Message-ID"] for copy in copies] == [response.json()["message_id"]]


async def test_a_scheduled_send_waits_for_its_time_and_a_cancelled_one_never_goes(
    send_service: SendProcess,
    e2e_api: tuple[httpx.AsyncClient, AsyncDatabase[Document]],
    infra: Infra,
) -> None:
    api, db = e2e_api
    ws = await create_workspace(api, db, "E2E schedule")
    owner = await ready_account(infra, "acme.test", "owner")
    client = await ready_account(infra, "client.test", "client")
    other = await ready_account(infra, "client.test", "other")
    mailbox_id = await connect_owner(api, ws, infra, owner)
    send_at = utcnow() + timedelta(seconds=6)

    def body(to: MailAccount, subject: str) -> dict[str, Any]:
        return {
            "mailbox_id": mailbox_id,
            "to": [{"address": to.address}],
            "subject": subject,
            "body_text": "Later",
            "send_at": send_at.isoformat(),
        }

    scheduled = await post_send_request(api, ws.auth, body(client, "Later"))
    doomed = await post_send_request(api, ws.auth, body(other, "Never"))
    cancelled = await api.post(f"/v1/send-requests/{doomed.json()['id']}/cancel", headers=ws.auth)
    waiting = await api.get(f"/v1/send-requests/{scheduled.json()['id']}", headers=ws.auth)
    early = await messages_in(infra, client)
    assert utcnow() < send_at, "the checks before send_at took too long to mean anything"

    assert scheduled.status_code == 202, scheduled.text
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    assert waiting.json()["state"] == "queued"
    assert early == []
    sent = await state_of(api, ws, scheduled.json()["id"], "sent")
    delivered = await messages_in(infra, client)
    assert [m["Subject"] for m in delivered] == ["Later"]
    assert datetime.fromisoformat(sent["sent_at"]) >= send_at.replace(microsecond=0)
    await asyncio.sleep(1.5)  # past send_at with the scheduler polling every 0.2 s
    final = await api.get(f"/v1/send-requests/{doomed.json()['id']}", headers=ws.auth)
    assert final.json()["state"] == "cancelled"
    assert final.json()["attempts"] == 0
    assert await messages_in(infra, other) == []
    assert [m["Subject"] for m in await messages_in(infra, owner, "Sent")] == ["Later"]
