"""Finding logged messages by `Message-ID` or id, at the level the caller may see; bulk or
automated mail, logged the way associate logs it, linked to contacts only with the reason shown;
defects on messages and counted on their mailbox, with the mail that was not stored.
"""

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from mailsync_associate.logbook import log_message
from mailsync_associate.repository import AssociateRepository
from mailsync_shared.contracts.mail import MailMessage, MailSource
from mailsync_shared.storage.raw_messages import store_raw
from mailsync_shared.storage.unstored_mail import record_unstored, unstored
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
    bearer,
    insert_mail,
    invite,
    other_ws_fixture,
    owned_mailbox,
    ws_fixture,
)

pytestmark = pytest.mark.integration

T0 = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)
OWNER = "owner@acme.test"
ANN = "ann@client.test"


async def test_a_message_is_found_by_its_message_id_with_or_without_brackets(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    mailbox = await owned_mailbox(ws, visibility="metadata")
    thread = await insert_mail(ws, [mailbox.id], subject="Offer", at=T0, body="the offer")
    message_id = thread.message_ids[0]

    with_brackets = await api.get(
        "/v1/messages", params={"message_id": message_id}, headers=ws.auth
    )
    bare = await api.get(
        "/v1/messages", params={"message_id": message_id.strip("<>")}, headers=ws.auth
    )
    unknown = await api.get("/v1/messages", params={"message_id": "<no@such>"}, headers=ws.auth)

    assert with_brackets.status_code == 200, with_brackets.text
    (found,) = with_brackets.json()["items"]
    assert (found["message_id"], found["thread_id"]) == (message_id, thread.id)
    assert (found["subject"], found["body_text"], found["access"]) == (
        "Offer",
        "the offer",
        "everything",
    )
    assert bare.json()["items"] == [found]
    assert unknown.json()["items"] == []
    by_id = await api.get(f"/v1/messages/{found['id']}", headers=ws.auth)
    assert by_id.status_code == 200
    assert by_id.json() == found


async def test_a_colleague_gets_what_the_mailbox_shares_and_nothing_of_a_private_thread(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    colleague = bearer((await invite(api, ws, "admin"))["token"])
    shared = await owned_mailbox(ws, visibility="metadata")
    hidden = await owned_mailbox(ws, "owner2@acme.test", visibility="private")
    open_thread = await insert_mail(ws, [shared.id], subject="Offer", at=T0, body="secret terms")
    private_thread = await insert_mail(ws, [shared.id], subject="Salary", at=T0, private=True)
    unshared = await insert_mail(ws, [hidden.id], subject="Mine", at=T0)

    async def lookup(message_id: str) -> list[dict[str, Any]]:
        response = await api.get(
            "/v1/messages", params={"message_id": message_id}, headers=colleague
        )
        assert response.status_code == 200, response.text
        items: list[dict[str, Any]] = response.json()["items"]
        return items

    (metadata,) = await lookup(open_thread.message_ids[0])
    assert (metadata["access"], metadata["subject"], metadata["body_text"]) == ("metadata", "", "")
    assert metadata["from"]["address"] == ANN, "participants show at metadata level"
    assert await lookup(private_thread.message_ids[0]) == []
    assert await lookup(unshared.message_ids[0]) == []
    for thread in (private_thread, unshared):
        stored = await ws.store.messages.find_one({"thread_id": thread.id})
        assert stored is not None
        response = await api.get(f"/v1/messages/{stored['_id']}", headers=colleague)
        assert response.status_code == 404
        assert response.headers["content-type"] == "application/problem+json"


async def test_another_workspace_finds_nothing(
    api: httpx.AsyncClient, ws: ApiWorkspace, other_ws: ApiWorkspace
) -> None:
    mailbox = await owned_mailbox(ws, visibility="workspace")
    thread = await insert_mail(ws, [mailbox.id], subject="Offer", at=T0)
    stored = await ws.store.messages.find_one({"thread_id": thread.id})
    assert stored is not None

    listed = await api.get(
        "/v1/messages", params={"message_id": thread.message_ids[0]}, headers=other_ws.auth
    )
    one = await api.get(f"/v1/messages/{stored['_id']}", headers=other_ws.auth)

    assert listed.json()["items"] == []
    assert one.status_code == 404


async def test_a_message_id_with_a_line_break_is_refused(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    response = await api.get(
        "/v1/messages", params={"message_id": "<a@b>\r\nX: y"}, headers=ws.auth
    )

    assert response.status_code == 422
    assert "message_id" in response.text


async def log_received(
    ws: ApiWorkspace,
    mailbox_id: str,
    *,
    sender: str,
    message_id: str,
    subject: str = "News",
    in_reply_to: str | None = None,
    direction: str = "received",
    to: str = OWNER,
    **automation: Any,
) -> None:
    raw = f"Subject: {subject}\r\n\r\nbody\r\n".encode()
    message = MailMessage.model_validate(
        {
            "mailbox_id": mailbox_id,
            "owner_address": OWNER,
            "direction": direction,
            "raw_id": await store_raw(ws.store, raw),
            "size": len(raw),
            "message_id": message_id,
            "in_reply_to": [in_reply_to] if in_reply_to else [],
            "subject": subject,
            "date": T0,
            "from": {"address": sender},
            "to": [{"address": to}],
            "automation": automation,
        }
    )
    await log_message(AssociateRepository(ws.store), message)


async def records(api: httpx.AsyncClient, ws: ApiWorkspace) -> dict[str, str]:
    async def created(path: str, body: dict[str, Any]) -> str:
        response = await api.post(path, json=body, headers=ws.auth)
        assert response.status_code == 201, response.text
        record_id: str = response.json()["id"]
        return record_id

    company = await created("/v1/companies", {"name": "Client", "domains": ["client.test"]})
    ann = await created("/v1/contacts", {"emails": [ANN], "company_id": company})
    deal = await created("/v1/deals", {"name": "Renewal", "contact_ids": [ann]})
    company_deal = await created("/v1/deals", {"name": "Upsell", "company_id": company})
    return {"company": company, "ann": ann, "deal": deal, "company_deal": company_deal}


@pytest.mark.parametrize(
    ("sender", "automation", "reason"),
    [
        (ANN, {"list_unsubscribe": True}, "List-Unsubscribe"),
        (ANN, {"precedence": "bulk"}, "Precedence: bulk"),
        (ANN, {"auto_submitted": "auto-replied"}, "Auto-Submitted: auto-replied"),
        ("noreply@client.test", {}, "noreply@client.test"),
    ],
)
async def test_bulk_and_automated_mail_is_linked_to_the_contact_only_with_the_reason(
    api: httpx.AsyncClient,
    ws: ApiWorkspace,
    sender: str,
    automation: dict[str, Any],
    reason: str,
) -> None:
    ids = await records(api, ws)
    mailbox = await owned_mailbox(ws)
    await log_received(ws, mailbox.id, sender=sender, message_id="<n1@client.test>", **automation)

    (found,) = (
        await api.get("/v1/messages", params={"message_id": "<n1@client.test>"}, headers=ws.auth)
    ).json()["items"]
    thread = (await api.get(f"/v1/threads/{found['thread_id']}", headers=ws.auth)).json()

    assert reason in thread["automated"]
    assert thread["deal_ids"] == [], "bulk mail is never linked to a deal"
    if sender == ANN:
        assert thread["contact_ids"] == [ids["ann"]]
        assert thread["company_ids"] == [ids["company"]], "through the contact, not the domain"
        (contact_link,) = [link for link in thread["links"] if link["record_type"] == "contact"]
        assert reason in contact_link["reason"]
        company_link = next(link for link in thread["links"] if link["record_type"] == "company")
        assert "belongs to company" in company_link["reason"]
    else:
        assert (thread["contact_ids"], thread["company_ids"]) == ([], []), (
            "never linked to a company by its domain alone"
        )
    deal_timeline = await api.get(f"/v1/deals/{ids['company_deal']}/timeline", headers=ws.auth)
    assert deal_timeline.json()["items"] == []


async def test_a_person_replying_in_a_bulk_thread_links_it_as_usual(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    ids = await records(api, ws)
    mailbox = await owned_mailbox(ws)
    await log_received(ws, mailbox.id, sender=ANN, message_id="<n2@client.test>", precedence="list")
    await log_received(
        ws,
        mailbox.id,
        sender=ANN,
        message_id="<n3@client.test>",
        subject="Re: News",
        in_reply_to="<n2@client.test>",
    )

    thread = await ws.store.threads.find_one({"logged_message_ids": "<n3@client.test>"})

    assert thread is not None
    assert thread["automated"] is None
    assert thread["deal_ids"] == [ids["deal"]], "a person wrote: the contact's open deal links"


async def test_mail_the_owner_sent_is_never_bulk(api: httpx.AsyncClient, ws: ApiWorkspace) -> None:
    ids = await records(api, ws)
    mailbox = await owned_mailbox(ws)
    await log_received(
        ws,
        mailbox.id,
        sender=OWNER,
        to=ANN,
        message_id="<s1@acme.test>",
        direction="sent",
        precedence="bulk",
    )

    thread = await ws.store.threads.find_one({"logged_message_ids": "<s1@acme.test>"})

    assert thread is not None
    assert thread.get("automated") is None
    assert thread["deal_ids"] == [ids["deal"]]


async def test_defects_are_shown_on_the_message_and_counted_on_its_mailbox_with_mail_not_stored(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    mailbox = await owned_mailbox(ws, visibility="metadata")
    odd = {"message_id": "<odd@client.test>", "defects": ["charset_replaced", "header_truncated"]}
    plain = {"message_id": "<plain@client.test>", "defects": []}
    also_odd = {"message_id": "<late@client.test>", "defects": ["charset_replaced"]}
    for fields in (odd, plain, also_odd):
        raw_id = await store_raw(ws.store, f"Subject: x\r\n\r\n{fields['message_id']}".encode())
        message = MailMessage.model_validate(
            {
                "mailbox_id": mailbox.id,
                "owner_address": OWNER,
                "direction": "received",
                "raw_id": raw_id,
                "size": 10,
                "subject": "Odd",
                "date": T0,
                "from": {"address": ANN},
                "to": [{"address": OWNER}],
                **fields,
            }
        )
        await log_message(AssociateRepository(ws.store), message)
    source = MailSource(
        mailbox_id=mailbox.id, folder="INBOX", folder_role="inbox", uidvalidity=7, uid=42
    )
    await record_unstored(ws.store, [unstored(source, 61_000_000, "too_large", "61000000 bytes")])

    found = await api.get("/v1/messages", params={"message_id": odd["message_id"]}, headers=ws.auth)
    shown = await api.get(f"/v1/mailboxes/{mailbox.id}", headers=ws.auth)
    listed = await api.get("/v1/mailboxes", headers=ws.auth)

    (message_out,) = found.json()["items"]
    assert message_out["defects"] == ["charset_replaced", "header_truncated"]
    status = shown.json()["status"]
    assert status["defects"] == {"charset_replaced": 2, "header_truncated": 1}
    assert status["unstored_total"] == 1
    (entry,) = status["unstored"]
    assert (entry["folder"], entry["uid"], entry["size"], entry["reason"]) == (
        "INBOX",
        42,
        61_000_000,
        "too_large",
    )
    (listed_mailbox,) = [m for m in listed.json() if m["id"] == mailbox.id]
    assert listed_mailbox["status"] == status


async def test_a_reconciliation_is_asked_for_and_a_disconnected_mailbox_refuses(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    mailbox = await owned_mailbox(ws)

    asked = await api.post(f"/v1/mailboxes/{mailbox.id}/reconcile", headers=ws.auth)
    await api.post(f"/v1/mailboxes/{mailbox.id}/disconnect", headers=ws.auth)
    refused = await api.post(f"/v1/mailboxes/{mailbox.id}/reconcile", headers=ws.auth)

    assert asked.status_code == 202, asked.text
    assert asked.json()["status"]["reconcile_requested_at"] is not None
    stored = await ws.store.mailboxes.find_one({"_id": mailbox.id})
    assert stored is not None
    assert stored["reconcile_requested_at"] is not None
    assert refused.status_code == 409
