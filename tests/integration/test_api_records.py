"""Contacts, companies, deals and their timelines through the api, on the real database."""

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from mailsync_shared.contracts.mail import Address
from mailsync_shared.contracts.records import LinkReason
from mailsync_shared.storage.documents import MessageDocument, ThreadDocument
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
    other_ws_fixture,
    owned_mailbox,
    ws_fixture,
)

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


async def create(
    api: httpx.AsyncClient, ws: ApiWorkspace, path: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = await api.post(path, json=body, headers=ws.auth)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def insert_thread(
    ws: ApiWorkspace,
    mailbox_id: str,
    *,
    subject: str,
    at: datetime,
    contact_ids: Sequence[str] = (),
    company_ids: Sequence[str] = (),
    deal_ids: Sequence[str] = (),
    messages: int = 2,
) -> ThreadDocument:
    thread = ThreadDocument(
        workspace_id=ws.id,
        subject=subject,
        participants=["ann@client.test", "owner@acme.test"],
        mailbox_ids=[mailbox_id],
        contact_ids=list(contact_ids),
        company_ids=list(company_ids),
        deal_ids=list(deal_ids),
        link_reasons=[
            LinkReason(
                record_type="contact", record_id=record_id, reason="ann@client.test took part"
            )
            for record_id in contact_ids
        ],
        first_message_at=at - timedelta(hours=messages - 1),
        last_message_at=at,
        message_count=messages,
    )
    documents = []
    # Inserted newest first, so the api's oldest-first order cannot come from insertion order.
    for index in reversed(range(messages)):
        sent_by_owner = index % 2 == 1
        owner = Address(address="owner@acme.test", name="Olga Owner")
        client = Address(address="ann@client.test", name="Ann")
        documents.append(
            MessageDocument(
                workspace_id=ws.id,
                message_id=f"<{thread.id}.{index}@client.test>",
                thread_id=thread.id,
                mailbox_ids=[mailbox_id],
                direction="sent" if sent_by_owner else "received",
                from_=owner if sent_by_owner else client,
                to=[client if sent_by_owner else owner],
                subject=subject if index == 0 else f"Re: {subject}",
                date=at - timedelta(hours=messages - 1 - index),
                body_text=f"message {index}",
                raw_id=f"raw-{thread.id}-{index}",
            )
        )
    thread.message_ids = [document.message_id for document in reversed(documents)]
    await ws.store.threads.insert_one(thread.to_document())
    for document in documents:
        await ws.store.messages.insert_one(document.to_document())
    return thread


async def test_contact_crud_lower_cases_addresses(api: httpx.AsyncClient, ws: ApiWorkspace) -> None:
    contact = await create(
        api, ws, "/v1/contacts", {"name": "Ann", "emails": ["Ann@Client.TEST", "ann@client.test"]}
    )
    assert contact["emails"] == ["ann@client.test"]

    read = await api.get(f"/v1/contacts/{contact['id']}", headers=ws.auth)
    assert read.status_code == 200
    assert read.json() == contact

    patched = await api.patch(
        f"/v1/contacts/{contact['id']}",
        json={"name": "Ann Smith", "emails": ["ann@client.test", "A.Smith@Client.test"]},
        headers=ws.auth,
    )
    assert patched.status_code == 200
    assert patched.json()["name"] == "Ann Smith"
    assert patched.json()["emails"] == ["ann@client.test", "a.smith@client.test"]

    stored = await ws.store.contacts.find_one({"_id": contact["id"]})
    assert stored is not None
    assert stored["emails"] == ["ann@client.test", "a.smith@client.test"]


async def test_invalid_email_is_a_422_problem_naming_the_field(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    response = await api.post(
        "/v1/contacts",
        json={"name": "Bob", "emails": ["bob@client.test", "not-an-address"]},
        headers=ws.auth,
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["invalid_params"][0]["name"] == "body.emails.1"
    assert "body.emails.1" in problem["detail"]
    assert await ws.store.contacts.count() == 0


async def test_unknown_fields_and_null_required_fields_are_refused(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    contact = await create(api, ws, "/v1/contacts", {"emails": ["cy@client.test"]})

    unknown = await api.post(
        "/v1/contacts", json={"emails": ["dee@client.test"], "emial": "x"}, headers=ws.auth
    )
    nulled = await api.patch(
        f"/v1/contacts/{contact['id']}", json={"emails": None}, headers=ws.auth
    )

    assert unknown.status_code == 422
    assert unknown.json()["invalid_params"][0]["name"] == "body.emial"
    assert nulled.status_code == 422
    assert nulled.json()["invalid_params"][0]["name"] == "body.emails"


async def test_an_address_belongs_to_one_contact(api: httpx.AsyncClient, ws: ApiWorkspace) -> None:
    await create(api, ws, "/v1/contacts", {"emails": ["ann@client.test"]})

    response = await api.post("/v1/contacts", json={"emails": ["ANN@client.test"]}, headers=ws.auth)

    assert response.status_code == 409
    assert "ann@client.test" in response.json()["detail"]


async def test_contact_upsert_by_external_id_creates_then_replaces(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    first = await api.put(
        "/v1/contacts/by-external-id/crm-42",
        json={"name": "Ann", "emails": ["ann@client.test"]},
        headers=ws.auth,
    )
    second = await api.put(
        "/v1/contacts/by-external-id/crm-42",
        json={"name": "Ann Smith", "emails": ["ann.smith@client.test"]},
        headers=ws.auth,
    )

    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["emails"] == ["ann.smith@client.test"]
    assert second.json()["external_id"] == "crm-42"
    assert await ws.store.contacts.count({"external_id": "crm-42"}) == 1


async def test_contact_list_pages_newest_first_with_a_cursor(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    created = [
        (await create(api, ws, "/v1/contacts", {"emails": [f"p{index}@client.test"]}))["id"]
        for index in range(5)
    ]

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await api.get("/v1/contacts", params=params, headers=ws.auth)
        assert response.status_code == 200
        page = response.json()
        seen.extend(item["id"] for item in page["items"])
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert pages == 3
    assert seen == list(reversed(created))


async def test_page_size_above_the_maximum_is_refused(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    response = await api.get("/v1/contacts", params={"limit": 101}, headers=ws.auth)

    assert response.status_code == 422
    assert response.json()["invalid_params"][0]["name"] == "query.limit"


async def test_companies_and_deals_link_only_to_records_of_the_same_workspace(
    api: httpx.AsyncClient, ws: ApiWorkspace, other_ws: ApiWorkspace
) -> None:
    company = await create(api, ws, "/v1/companies", {"name": "Client", "domains": ["Client.test"]})
    contact = await create(api, ws, "/v1/contacts", {"emails": ["ann@client.test"]})
    foreign = await create(api, other_ws, "/v1/contacts", {"emails": ["zed@else.test"]})
    assert company["domains"] == ["client.test"]

    deal = await create(
        api,
        ws,
        "/v1/deals",
        {
            "name": "Renewal",
            "contact_ids": [contact["id"]],
            "company_id": company["id"],
            "value": 1200,
        },
    )
    linked_abroad = await api.post(
        "/v1/deals", json={"name": "Sneaky", "contact_ids": [foreign["id"]]}, headers=ws.auth
    )
    moved = await api.patch(f"/v1/deals/{deal['id']}", json={"stage": "proposal"}, headers=ws.auth)

    assert deal["contact_ids"] == [contact["id"]]
    assert linked_abroad.status_code == 422
    assert linked_abroad.json()["invalid_params"][0]["name"] == "body.contact_ids"
    assert moved.status_code == 200
    assert moved.json()["stage"] == "proposal"
    assert moved.json()["value"] == 1200


async def test_a_closing_stage_closes_the_deal_and_a_contradiction_is_refused(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    won_at_once = await create(api, ws, "/v1/deals", {"name": "A", "stage": "Won"})
    contradicting = await api.post(
        "/v1/deals", json={"name": "B", "stage": "won", "status": "open"}, headers=ws.auth
    )
    deal = await create(api, ws, "/v1/deals", {"name": "C", "stage": "proposal"})
    path = f"/v1/deals/{deal['id']}"

    lost = await api.patch(path, json={"stage": "lost"}, headers=ws.auth)
    reopened = await api.patch(path, json={"stage": "negotiation"}, headers=ws.auth)
    lost_at_stage = await api.patch(path, json={"status": "lost"}, headers=ws.auth)
    kept = await api.patch(path, json={"stage": "review"}, headers=ws.auth)
    refused = await api.patch(path, json={"stage": "won", "status": "lost"}, headers=ws.auth)
    upserted = await api.put(
        "/v1/deals/by-external-id/crm-9", json={"name": "D", "stage": "won"}, headers=ws.auth
    )

    assert won_at_once["status"] == "won"
    assert contradicting.status_code == 422
    assert "contradicts" in contradicting.text
    assert (lost.json()["stage"], lost.json()["status"]) == ("lost", "lost")
    assert reopened.json()["status"] == "open", "moving out of a closing stage reopens it"
    assert (lost_at_stage.json()["stage"], lost_at_stage.json()["status"]) == (
        "negotiation",
        "lost",
    ), "a deal may be lost at an open stage"
    assert kept.json()["status"] == "lost", "another open stage keeps the given status"
    assert refused.status_code == 422
    assert refused.json()["invalid_params"][0]["name"] == "body.status"
    assert upserted.json()["status"] == "won"
    stored = await ws.store.deals.find_one({"_id": deal["id"]})
    assert stored is not None
    assert (stored["stage"], stored["status"]) == ("review", "lost")


async def test_timelines_show_linked_threads_newest_first_with_messages_oldest_first(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    mailbox = await owned_mailbox(ws)
    contact = await create(api, ws, "/v1/contacts", {"emails": ["ann@client.test"]})
    company = await create(api, ws, "/v1/companies", {"name": "Client", "domains": ["client.test"]})
    deal = await create(api, ws, "/v1/deals", {"name": "Renewal"})
    older = await insert_thread(
        ws,
        mailbox.id,
        subject="Pricing",
        at=T0,
        contact_ids=[contact["id"]],
        company_ids=[company["id"]],
    )
    newer = await insert_thread(
        ws,
        mailbox.id,
        subject="Contract",
        at=T0 + timedelta(days=1),
        contact_ids=[contact["id"]],
        deal_ids=[deal["id"]],
        messages=3,
    )
    await insert_thread(ws, mailbox.id, subject="Unrelated", at=T0 + timedelta(days=2))

    contact_timeline = (
        await api.get(f"/v1/contacts/{contact['id']}/timeline", headers=ws.auth)
    ).json()
    company_timeline = (
        await api.get(f"/v1/companies/{company['id']}/timeline", headers=ws.auth)
    ).json()
    deal_timeline = (await api.get(f"/v1/deals/{deal['id']}/timeline", headers=ws.auth)).json()

    assert [thread["id"] for thread in contact_timeline["items"]] == [newer.id, older.id]
    assert [thread["id"] for thread in company_timeline["items"]] == [older.id]
    assert [thread["id"] for thread in deal_timeline["items"]] == [newer.id]
    messages = contact_timeline["items"][0]["messages"]
    assert [message["body_text"] for message in messages] == ["message 0", "message 1", "message 2"]
    first = messages[0]
    assert first["from"] == {"address": "ann@client.test", "name": "Ann"}
    assert first["direction"] == "received"
    assert first["message_id"] == f"<{newer.id}.0@client.test>"
    assert set(first) >= {"id", "to", "cc", "subject", "date", "mailbox_ids"}
    assert contact_timeline["items"][1]["links"][0]["reason"] == "ann@client.test took part"


async def test_timeline_pages_with_a_cursor(api: httpx.AsyncClient, ws: ApiWorkspace) -> None:
    mailbox = await owned_mailbox(ws)
    contact = await create(api, ws, "/v1/contacts", {"emails": ["ann@client.test"]})
    threads = [
        await insert_thread(
            ws,
            mailbox.id,
            subject=f"T{day}",
            at=T0 + timedelta(days=day),
            contact_ids=[contact["id"]],
        )
        for day in range(3)
    ]

    first = (
        await api.get(
            f"/v1/contacts/{contact['id']}/timeline", params={"limit": 2}, headers=ws.auth
        )
    ).json()
    second = (
        await api.get(
            f"/v1/contacts/{contact['id']}/timeline",
            params={"limit": 2, "cursor": first["next_cursor"]},
            headers=ws.auth,
        )
    ).json()

    assert [thread["id"] for thread in first["items"]] == [threads[2].id, threads[1].id]
    assert [thread["id"] for thread in second["items"]] == [threads[0].id]
    assert second["next_cursor"] is None


async def test_threads_can_be_read_and_listed_unassigned(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    mailbox = await owned_mailbox(ws)
    contact = await create(api, ws, "/v1/contacts", {"emails": ["ann@client.test"]})
    linked = await insert_thread(
        ws, mailbox.id, subject="Linked", at=T0, contact_ids=[contact["id"]]
    )
    loose = await insert_thread(ws, mailbox.id, subject="Loose", at=T0)

    unassigned = await api.get("/v1/threads", params={"unassigned": "true"}, headers=ws.auth)
    everything = await api.get("/v1/threads", headers=ws.auth)
    one = await api.get(f"/v1/threads/{linked.id}", headers=ws.auth)

    assert [thread["id"] for thread in unassigned.json()["items"]] == [loose.id]
    assert {thread["id"] for thread in everything.json()["items"]} == {linked.id, loose.id}
    assert one.status_code == 200
    assert one.json()["contact_ids"] == [contact["id"]]
    assert len(one.json()["messages"]) == 2


async def test_another_workspace_cannot_read_or_change_records_or_threads(
    api: httpx.AsyncClient, ws: ApiWorkspace, other_ws: ApiWorkspace
) -> None:
    mailbox = await owned_mailbox(ws)
    contact = await create(api, ws, "/v1/contacts", {"emails": ["ann@client.test"]})
    company = await create(api, ws, "/v1/companies", {"name": "Client"})
    deal = await create(api, ws, "/v1/deals", {"name": "Renewal"})
    thread = await insert_thread(
        ws, mailbox.id, subject="Private", at=T0, contact_ids=[contact["id"]]
    )

    for path in (
        f"/v1/contacts/{contact['id']}",
        f"/v1/contacts/{contact['id']}/timeline",
        f"/v1/companies/{company['id']}",
        f"/v1/companies/{company['id']}/timeline",
        f"/v1/deals/{deal['id']}",
        f"/v1/deals/{deal['id']}/timeline",
        f"/v1/threads/{thread.id}",
    ):
        response = await api.get(path, headers=other_ws.auth)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
    patched = await api.patch(
        f"/v1/contacts/{contact['id']}", json={"name": "Mallory"}, headers=other_ws.auth
    )
    listed = await api.get("/v1/contacts", headers=other_ws.auth)
    threads = await api.get("/v1/threads", headers=other_ws.auth)

    assert patched.status_code == 404
    assert listed.json()["items"] == []
    assert threads.json()["items"] == []
    stored = await ws.store.contacts.find_one({"_id": contact["id"]})
    assert stored is not None
    assert stored["name"] == ""
