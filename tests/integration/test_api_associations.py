"""Manual links, suggestions, private threads and skipped mail through the api.

Later mail is logged with associate's own `log_message`, in-process, so "the links stick"
is checked against the code that logs real mail.
"""

from collections.abc import AsyncIterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest

from mailsync_shared.topology import EVENTS_EXCHANGE
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
    bearer,
    invite,
    log_email,
    other_ws_fixture,
    owned_mailbox,
    ws_fixture,
)
from tests.integration.conftest_capture import Tap, taps
from tests.support.infra import Infra
from tests.support.mail import build_message

pytestmark = pytest.mark.integration

OWNER = "owner@acme.test"
ANN = "ann@client.test"
ASSOCIATED = "mailsync.thread.associated.v1"


@pytest.fixture(name="events")
async def events_fixture(infra: Infra, ws: ApiWorkspace) -> AsyncIterator[Tap]:
    async with taps(infra.rabbitmq_url) as tap:
        yield await tap(EVENTS_EXCHANGE.name, f"#.{ws.id}")


async def received(
    ws: ApiWorkspace,
    mailbox_id: str,
    sender: str,
    subject: str,
    *,
    name: str = "",
    in_reply_to: str | None = None,
) -> tuple[EmailMessage, str | None]:
    """Log mail from `sender` to the owner as associate does; its thread id, None if skipped."""
    email = build_message(
        sender=sender,
        sender_name=name,
        to=[OWNER],
        subject=subject,
        body="b",
        in_reply_to=in_reply_to,
    )
    await log_email(ws, mailbox_id, email)
    stored = await ws.store.messages.find_one({"message_id": email["Message-ID"]})
    return email, None if stored is None else str(stored["thread_id"])


async def create(api: httpx.AsyncClient, ws: ApiWorkspace, path: str, body: dict[str, Any]) -> str:
    response = await api.post(path, json=body, headers=ws.auth)
    assert response.status_code == 201, response.text
    record_id: str = response.json()["id"]
    return record_id


async def seed_records(api: httpx.AsyncClient, ws: ApiWorkspace) -> dict[str, str]:
    company = await create(
        api, ws, "/v1/companies", {"name": "Client Co", "domains": ["client.test"]}
    )
    ann = await create(
        api, ws, "/v1/contacts", {"name": "Ann Client", "emails": [ANN], "company_id": company}
    )
    paul = await create(api, ws, "/v1/contacts", {"name": "Paul", "emails": ["paul@else.test"]})
    deal = await create(api, ws, "/v1/deals", {"name": "Renewal", "contact_ids": [paul]})
    return {"company": company, "ann": ann, "paul": paul, "deal": deal}


async def test_manual_links_replace_the_automatic_ones_and_stick_for_later_mail(
    api: httpx.AsyncClient, ws: ApiWorkspace, events: Tap
) -> None:
    records = await seed_records(api, ws)
    mailbox_id = (await owned_mailbox(ws)).id
    first, thread_id = await received(ws, mailbox_id, ANN, "Contract")
    assert thread_id is not None
    automatic = await ws.store.threads.find_one({"_id": thread_id})
    assert automatic is not None
    assert automatic["contact_ids"] == [records["ann"]]

    linked = await api.put(
        f"/v1/threads/{thread_id}/links",
        json={"contact_ids": [records["paul"]], "deal_ids": [records["deal"]]},
        headers=ws.auth,
    )

    assert linked.status_code == 200, linked.text
    body = linked.json()
    assert (body["contact_ids"], body["company_ids"], body["deal_ids"]) == (
        [records["paul"]],
        [],
        [records["deal"]],
    )
    assert body["manually_linked"] is True
    assert all(link["reason"].startswith("linked by ") for link in body["links"])
    published = await events.wait_for(
        lambda e: any(x["type"] == ASSOCIATED and x["data"]["manual"] for x in e), "manual link"
    )
    manual = [x for x in published if x["type"] == ASSOCIATED and x["data"]["manual"]]
    assert manual[0]["data"]["contact_ids"] == [records["paul"]]

    _, reply_thread = await received(
        ws, mailbox_id, ANN, "Re: Contract", in_reply_to=first["Message-ID"]
    )

    assert reply_thread == thread_id
    thread = await api.get(f"/v1/threads/{thread_id}", headers=ws.auth)
    assert thread.json()["message_count"] == 2
    assert (thread.json()["contact_ids"], thread.json()["deal_ids"]) == (
        [records["paul"]],
        [records["deal"]],
    )
    assert thread.json()["company_ids"] == [], "Ann's company is not linked back"


async def test_unknown_record_ids_are_named_and_change_nothing(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    records = await seed_records(api, ws)
    mailbox_id = (await owned_mailbox(ws)).id
    _, thread_id = await received(ws, mailbox_id, ANN, "Unknown ids")

    response = await api.put(
        f"/v1/threads/{thread_id}/links",
        json={"contact_ids": [records["ann"], "nosuchcontact"], "company_ids": ["nosuchco"]},
        headers=ws.auth,
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["unknown_ids"] == {"contact_ids": ["nosuchcontact"], "company_ids": ["nosuchco"]}
    assert sorted(p["name"] for p in problem["invalid_params"]) == [
        "body.company_ids",
        "body.contact_ids",
    ]
    thread = await ws.store.threads.find_one({"_id": thread_id})
    assert thread is not None
    assert thread.get("manually_linked", False) is False
    assert thread["contact_ids"] == [records["ann"]]


async def test_unassigned_threads_get_suggestions_with_reasons(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    records = await seed_records(api, ws)
    mailbox_id = (await owned_mailbox(ws)).id
    _, private_address = await received(
        ws, mailbox_id, "ann.private@gmail.com", "From home", name="Ann Client"
    )
    _, colleague = await received(ws, mailbox_id, "zoe@client.test", "Hello")

    by_name = await api.get(f"/v1/threads/{private_address}/suggestions", headers=ws.auth)
    by_domain = await api.get(f"/v1/threads/{colleague}/suggestions", headers=ws.auth)

    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["assigned"] is False
    first = by_name.json()["suggestions"][0]
    assert (first["record_type"], first["record_id"]) == ("contact", records["ann"])
    assert first["reason"] == "ann.private@gmail.com writes as Ann Client"
    # zoe@client.test is linked to Client Co by its domain, and Ann is a colleague there.
    assert by_domain.json()["assigned"] is True
    suggested = {
        (s["record_type"], s["record_id"]): s["reason"] for s in by_domain.json()["suggestions"]
    }
    assert suggested[("contact", records["ann"])] == "a contact at client.test"


async def test_owner_makes_a_thread_private_and_public_again(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    mailbox_id = (await owned_mailbox(ws, visibility="subject")).id
    _, thread_id = await received(ws, mailbox_id, ANN, "Salary")
    colleague = bearer((await invite(api, ws, "member"))["token"])

    colleague_sees = await api.get(f"/v1/threads/{thread_id}/suggestions", headers=colleague)
    colleague_tries = await api.post(f"/v1/threads/{thread_id}/private", headers=colleague)
    made_private = await api.post(f"/v1/threads/{thread_id}/private", headers=ws.auth)
    hidden = await api.get(f"/v1/threads/{thread_id}/suggestions", headers=colleague)
    hidden_links = await api.put(f"/v1/threads/{thread_id}/links", json={}, headers=colleague)
    owner_sees = await api.get(f"/v1/threads/{thread_id}/suggestions", headers=ws.auth)
    made_public = await api.delete(f"/v1/threads/{thread_id}/private", headers=ws.auth)
    visible_again = await api.get(f"/v1/threads/{thread_id}/suggestions", headers=colleague)

    assert colleague_sees.status_code == 200
    assert colleague_tries.status_code == 403
    assert colleague_tries.json()["type"].endswith("/not-mailbox-owner")
    assert made_private.json() == {"thread_id": thread_id, "private": True}
    assert (hidden.status_code, hidden_links.status_code) == (404, 404)
    assert owner_sees.status_code == 200
    assert made_public.json() == {"thread_id": thread_id, "private": False}
    assert visible_again.status_code == 200
    stored = await ws.store.threads.find_one({"_id": thread_id})
    assert stored is not None
    assert stored["private"] is False
    assert stored.get("manually_linked", False) is False, "the refused link attempt changed nothing"


async def test_client_only_mailbox_counts_the_mail_it_skipped(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    await seed_records(api, ws)
    mailbox_id = (await owned_mailbox(ws, sync={"scope": "client_only"})).id
    _, logged = await received(ws, mailbox_id, ANN, "Client mail")
    _, skipped = await received(ws, mailbox_id, "stranger@nowhere.test", "Newsletter")
    _, again = await received(ws, mailbox_id, "other@nowhere.test", "Offer")

    response = await api.get(f"/v1/mailboxes/{mailbox_id}/skipped", headers=ws.auth)

    assert logged is not None
    assert (skipped, again) == (None, None)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "mailbox_id": mailbox_id,
        "scope": "client_only",
        "skipped_unmatched": 2,
    }


async def test_another_workspace_gets_404_from_every_route(
    api: httpx.AsyncClient, ws: ApiWorkspace, other_ws: ApiWorkspace
) -> None:
    records = await seed_records(api, ws)
    mailbox_id = (await owned_mailbox(ws)).id
    _, thread_id = await received(ws, mailbox_id, ANN, "Theirs")
    theirs_records = {"contact_ids": [records["ann"]]}

    attempts = [
        await api.get(f"/v1/threads/{thread_id}/suggestions", headers=other_ws.auth),
        await api.put(f"/v1/threads/{thread_id}/links", json={}, headers=other_ws.auth),
        await api.post(f"/v1/threads/{thread_id}/private", headers=other_ws.auth),
        await api.delete(f"/v1/threads/{thread_id}/private", headers=other_ws.auth),
        await api.get(f"/v1/mailboxes/{mailbox_id}/skipped", headers=other_ws.auth),
    ]
    other_mailbox = (await owned_mailbox(other_ws)).id
    _, own_thread = await received(other_ws, other_mailbox, "x@y.test", "Mine")
    borrowed = await api.put(
        f"/v1/threads/{own_thread}/links", json=theirs_records, headers=other_ws.auth
    )

    assert [response.status_code for response in attempts] == [404] * 5
    assert all(r.headers["content-type"] == "application/problem+json" for r in attempts)
    assert borrowed.status_code == 422, "their contact is unknown here"
    assert borrowed.json()["unknown_ids"] == {"contact_ids": [records["ann"]]}
    thread = await ws.store.threads.find_one({"_id": thread_id})
    assert thread is not None
    assert (thread["private"], thread.get("manually_linked", False)) == (False, False)


async def test_operator_injection_in_link_bodies_is_refused(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    mailbox_id = (await owned_mailbox(ws)).id
    _, thread_id = await received(ws, mailbox_id, ANN, "Injection")
    injection: Any = {"$ne": None}

    for field in ("contact_ids", "company_ids", "deal_ids"):
        for value in (injection, [injection]):
            response = await api.put(
                f"/v1/threads/{thread_id}/links", json={field: value}, headers=ws.auth
            )
            assert response.status_code == 422, (field, value)
            names = [p["name"] for p in response.json()["invalid_params"]]
            assert any(name.startswith(f"body.{field}") for name in names), names
    in_path = await api.get("/v1/threads/%7B%22$ne%22:null%7D/suggestions", headers=ws.auth)
    assert in_path.status_code == 422
    thread = await ws.store.threads.find_one({"_id": thread_id})
    assert thread is not None
    assert thread.get("manually_linked", False) is False
