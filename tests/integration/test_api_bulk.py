"""Bulk import, thread search, streamed exports and erasing a mailbox's synced mail."""

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mailsync_shared.association.records import thread_ref_id
from mailsync_shared.contracts.mail import Address
from mailsync_shared.storage.attachments import load_attachment, store_attachment
from mailsync_shared.storage.capture_rules import CaptureDecisionDocument
from mailsync_shared.storage.documents import MailboxStatus, MessageDocument, SendRequestDocument
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
    bearer,
    insert_mail,
    invite,
    mailbox_document,
    owned_mailbox,
    ws_fixture,
)

pytestmark = pytest.mark.integration

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
CSV_HEADERS = {"content-type": "text/csv"}


async def test_csv_import_upserts_by_external_id_and_reports_each_bad_row(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    companies = await api.post(
        "/v1/imports/companies",
        json=[{"external_id": "co-1", "name": "Client Ltd", "domains": ["client.test"]}],
        headers=ws.auth,
    )
    body = (
        "external_id,name,emails,company_external_id\n"
        "c-1,Ann,ann@client.test;ann@home.test,co-1\n"
        "c-2,Bob,not-an-address,\n"
        "c-3,Cy,cy@client.test,co-missing\n"
        ",Dee,dee@client.test,\n"
    )

    first = await api.post("/v1/imports/contacts", content=body, headers={**ws.auth, **CSV_HEADERS})
    again = await api.post("/v1/imports/contacts", content=body, headers={**ws.auth, **CSV_HEADERS})

    assert companies.json()["created"] == 1
    report = first.json()
    assert first.status_code == 200, first.text
    assert (report["rows"], report["created"], report["updated"], report["failed"]) == (4, 2, 0, 2)
    errors = {error["row"]: error for error in report["errors"]}
    assert errors[2]["external_id"] == "c-2"
    assert errors[2]["invalid_params"][0]["name"] == "rows.2.emails.0"
    assert errors[3]["invalid_params"][0]["name"] == "rows.3.company_external_id"
    ann = await ws.store.contacts.find_one({"external_id": "c-1"})
    company = await ws.store.companies.find_one({"external_id": "co-1"})
    assert ann is not None
    assert company is not None
    assert ann["emails"] == ["ann@client.test", "ann@home.test"]
    assert ann["company_id"] == company["_id"]
    # The second run updates c-1; Dee has no external_id, so her address is now taken.
    assert (again.json()["created"], again.json()["updated"]) == (0, 1)
    assert {error["status"] for error in again.json()["errors"]} == {409, 422}
    assert await ws.store.contacts.count() == 2


async def test_json_import_of_deals_and_bodies_that_are_not_rows(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    deals = await api.post(
        "/v1/imports/deals",
        json=[
            {"external_id": "d-1", "name": "Renewal", "stage": "proposal", "value": 100},
            {"external_id": "d-2", "name": "", "value": -1},
            "not an object",
        ],
        headers=ws.auth,
    )
    not_rows = await api.post("/v1/imports/deals", json={"name": "x"}, headers=ws.auth)
    xml = await api.post(
        "/v1/imports/deals",
        content="<deals/>",
        headers={**ws.auth, "content-type": "application/xml"},
    )

    assert deals.json()["created"] == 1
    names = {p["name"] for e in deals.json()["errors"] for p in e["invalid_params"]}
    assert {"rows.2.name", "rows.2.value", "rows.3"} <= names
    assert not_rows.status_code == 422
    assert xml.status_code == 415


async def test_threads_are_searched_by_participant_subject_and_date(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    mailbox = await owned_mailbox(ws)
    march = await insert_mail(ws, [mailbox.id], subject="Pricing (draft)", at=T0)
    await insert_mail(
        ws,
        [mailbox.id],
        subject="Lunch",
        at=T0 + timedelta(days=10),
        participants=("owner@acme.test", "bob@other.test"),
    )

    async def ids(**params: str) -> list[str]:
        response = await api.get("/v1/threads", params=params, headers=ws.auth)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids(participant="ANN@client.test") == [march.id]
    assert await ids(subject="pricing (DRAFT") == [march.id]
    assert await ids(until=(T0 + timedelta(days=1)).isoformat()) == [march.id]
    assert len(await ids(since=T0.isoformat())) == 2
    assert (
        await ids(since=(T0 + timedelta(days=1)).isoformat(), participant="ann@client.test") == []
    )
    backwards = await api.get(
        "/v1/threads",
        params={"since": T0.isoformat(), "until": T0.isoformat()},
        headers=ws.auth,
    )
    assert backwards.status_code == 422


async def test_exports_stream_csv_and_json_for_the_workspace_or_one_record(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    ann = await api.post(
        "/v1/contacts",
        json={"name": "=HYPERLINK()", "emails": ["ann@client.test"]},
        headers=ws.auth,
    )
    await api.post("/v1/contacts", json={"name": "Bob", "emails": ["bob@x.test"]}, headers=ws.auth)
    mailbox = mailbox_document(ws.id, "owner@acme.test", visibility="workspace")
    await ws.store.mailboxes.insert_one(mailbox.to_document())
    thread = await insert_mail(
        ws, [mailbox.id], subject="Hi", at=T0, contact_ids=[ann.json()["id"]]
    )
    await insert_mail(ws, [mailbox.id], subject="Other", at=T0)

    contacts_csv = await api.get("/v1/exports/contacts", params={"format": "csv"}, headers=ws.auth)
    one = await api.get(
        "/v1/exports/messages",
        params={"record_type": "contact", "record_id": ann.json()["id"]},
        headers=ws.auth,
    )
    half = await api.get("/v1/exports/threads", params={"record_type": "contact"}, headers=ws.auth)

    assert contacts_csv.status_code == 200
    assert contacts_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(contacts_csv.text)))
    assert sorted(row["name"] for row in rows) == ["'=HYPERLINK()", "Bob"]
    messages = json.loads(one.text)
    assert [message["thread_id"] for message in messages] == [thread.id]
    assert messages[0]["body_text"] == "the body"
    assert half.status_code == 422


async def test_exports_leave_out_or_blank_what_the_caller_may_not_see(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    admin = await invite(api, ws, "admin")
    owner_id = (await api.get("/v1/me", headers=ws.auth)).json()["user"]["id"]
    private = mailbox_document(ws.id, "p@acme.test", visibility="private", owner_user_id=owner_id)
    shared = mailbox_document(ws.id, "m@acme.test", visibility="metadata", owner_user_id=owner_id)
    for mailbox in (private, shared):
        await ws.store.mailboxes.insert_one(mailbox.to_document())
    await insert_mail(ws, [private.id], subject="Private talk", at=T0, body="private body")
    await insert_mail(ws, [shared.id], subject="Shared talk", at=T0, body="shared body")

    as_owner = json.loads((await api.get("/v1/exports/messages", headers=ws.auth)).text)
    as_admin = json.loads(
        (await api.get("/v1/exports/messages", headers=bearer(admin["token"]))).text
    )
    member = await invite(api, ws, "member")
    forbidden = await api.get("/v1/exports/messages", headers=bearer(member["token"]))

    assert sorted(message["subject"] for message in as_owner) == ["Private talk", "Shared talk"]
    assert len(as_admin) == 1
    assert as_admin[0]["access"] == "metadata"
    assert as_admin[0]["subject"] == ""
    assert as_admin[0]["body_text"] == ""
    assert as_admin[0]["from"]["address"] == "ann@client.test"
    assert forbidden.status_code == 403


async def test_erasing_synced_data_needs_an_admin_a_confirmation_and_a_disconnected_mailbox(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    mailbox = mailbox_document(ws.id, "gone@acme.test")
    other = mailbox_document(ws.id, "stays@acme.test")
    for document in (mailbox, other):
        await ws.store.mailboxes.insert_one(document.to_document())
    only_here = await insert_mail(ws, [mailbox.id], subject="Only here", at=T0)
    both = await insert_mail(ws, [mailbox.id, other.id], subject="Both", at=T0)
    url = f"/v1/mailboxes/{mailbox.id}/synced-data"
    member = await invite(api, ws, "member")

    as_member = await api.delete(
        url, params={"confirm": "gone@acme.test"}, headers=bearer(member["token"])
    )
    unconfirmed = await api.delete(url, params={"confirm": "yes"}, headers=ws.auth)
    connected = await api.delete(url, params={"confirm": "gone@acme.test"}, headers=ws.auth)
    await api.post(f"/v1/mailboxes/{mailbox.id}/disconnect", headers=ws.auth)
    erased = await api.delete(url, params={"confirm": "Gone@acme.test"}, headers=ws.auth)

    assert as_member.status_code == 403
    assert unconfirmed.status_code == 422
    assert unconfirmed.json()["invalid_params"][0]["name"] == "query.confirm"
    assert connected.status_code == 409
    assert erased.status_code == 200, erased.text
    assert erased.json() == {
        "mailbox_id": mailbox.id,
        "messages_deleted": 1,
        "messages_kept": 1,
        "threads_deleted": 1,
        "threads_updated": 1,
        "raw_messages_deleted": 1,
        "skipped_markers_deleted": 0,
        "capture_decisions_deleted": 0,
        "send_requests_deleted": 0,
        "attachments_deleted": 0,
    }
    assert await ws.store.threads.find_one({"_id": only_here.id}) is None
    kept = await ws.store.threads.find_one({"_id": both.id})
    assert kept is not None
    assert kept["mailbox_ids"] == [other.id]
    assert await ws.store.mailboxes.find_one({"_id": mailbox.id}) is not None


async def test_erasing_removes_everything_derived_from_the_mailbox(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    """Raw bytes (chunks too), messages, thread fields and refs, capture decisions, send
    requests and their attachments: nothing of the erased mailbox's mail is left."""
    gone = mailbox_document(ws.id, "gone@acme.test", status=MailboxStatus(state="disconnected"))
    stays = mailbox_document(ws.id, "stays@acme.test")
    for document in (gone, stays):
        await ws.store.mailboxes.insert_one(document.to_document())
    await ws.store.contacts.insert_one(
        {"_id": f"{ws.id}-secret", "name": "Secret", "emails": ["secret-9c1@client.test"]}
    )
    secret = await insert_mail(
        ws,
        [gone.id],
        subject="Secret first 9c1",
        at=T0,
        participants=("gone@acme.test", "secret-9c1@client.test"),
        contact_ids=[f"{ws.id}-secret"],
    )
    await ws.store.threads.update_one(
        {"_id": secret.id},
        {
            "$set": {
                "link_reasons": [
                    {
                        "record_type": "contact",
                        "record_id": f"{ws.id}-secret",
                        "reason": "secret-9c1@client.test is an address of contact Secret",
                    }
                ]
            }
        },
    )
    # A later reply seen only in the mailbox that stays, on the same thread.
    later = MessageDocument(
        workspace_id=ws.id,
        message_id="<later-9c1@client.test>",
        thread_id=secret.id,
        mailbox_ids=[stays.id],
        direction="received",
        from_=Address(address="ann@client.test"),
        to=[Address(address="stays@acme.test")],
        subject="Re: Later",
        date=T0 + timedelta(days=1),
        in_reply_to=[f"<{secret.id}@client.test>"],
        raw_id="raw-later-9c1",
    )
    await ws.store.messages.insert_one(later.to_document())
    await ws.store.raw_messages.insert_one({"_id": later.raw_id, "size": 1, "data": b"x"})
    await ws.store.threads.update_one(
        {"_id": secret.id}, {"$push": {"mailbox_ids": stays.id}, "$set": {"message_count": 2}}
    )
    chunked_only = await insert_mail(ws, [gone.id], subject="Big 9c1", at=T0)
    big_raw = f"raw-{chunked_only.id}"
    await ws.store.raw_messages.delete_many({"_id": big_raw})
    await ws.store.raw_messages.insert_one({"_id": big_raw, "size": 2, "chunks": 2})
    for index in range(2):
        await ws.store.raw_messages.insert_one(
            {"_id": f"{big_raw}:{index}", "chunk_of": big_raw, "index": index, "data": b"x"}
        )
    for logged in (secret, chunked_only):
        await ws.store.thread_refs.insert_one(
            {
                "_id": thread_ref_id(ws.id, "message-id", f"<{logged.id}@client.test>"),
                "thread_ids": [logged.id],
            }
        )
    for message_id, mailbox_id in (
        (f"<{secret.id}@client.test>", gone.id),
        ("<skipped-9c1@client.test>", gone.id),
        ("<later-9c1@client.test>", stays.id),
    ):
        decision = CaptureDecisionDocument(
            workspace_id=ws.id,
            address="secret-9c1@client.test",
            decision="skipped",
            rule="policy_none",
            message_id=message_id,
            mailbox_id=mailbox_id,
        )
        await ws.store.capture_decisions.insert_one(decision.to_document())
    only_gone = await store_attachment(ws.store, b"only gone 9c1", filename="a.txt")
    shared = await store_attachment(ws.store, b"shared 9c1", filename="b.txt")
    for mailbox, attached in ((gone, [only_gone, shared]), (stays, [shared])):
        request = SendRequestDocument(
            workspace_id=ws.id,
            mailbox_id=mailbox.id,
            idempotency_key=f"k-{mailbox.id}",
            from_=Address(address=mailbox.address),
            to=[Address(address="secret-9c1@client.test")],
            subject="Sent 9c1",
            body_text="x",
            message_id=f"<sent-{mailbox.id}@acme.test>",
            attachments=attached,
            state="sent",
            raw_id=f"raw-sent-{mailbox.id}",
        )
        await ws.store.send_requests.insert_one(request.to_document())
        await ws.store.raw_messages.insert_one({"_id": request.raw_id, "size": 1, "data": b"x"})

    erased = await api.delete(
        f"/v1/mailboxes/{gone.id}/synced-data", params={"confirm": gone.address}, headers=ws.auth
    )

    assert erased.status_code == 200, erased.text
    report = erased.json()
    assert (report["messages_deleted"], report["threads_deleted"]) == (2, 1)
    assert (report["capture_decisions_deleted"], report["send_requests_deleted"]) == (2, 1)
    assert report["attachments_deleted"] == 1
    raw_left = {d["_id"] for d in await ws.store.raw_messages.find({})}
    assert raw_left == {"raw-later-9c1", f"raw-sent-{stays.id}"}
    thread = await ws.store.threads.find_one({"_id": secret.id})
    assert thread is not None
    assert "9c1" not in json.dumps(
        {k: v for k, v in thread.items() if k not in ("message_ids", "logged_message_ids")},
        default=str,
    )
    assert (thread["subject"], thread["message_count"]) == ("Re: Later", 1)
    assert thread["mailbox_ids"] == [stays.id]
    assert sorted(thread["participants"]) == ["ann@client.test", "stays@acme.test"]
    assert thread["contact_ids"] == []
    assert thread["first_message_at"] == thread["last_message_at"]
    refs = await ws.store.thread_refs.find({})
    assert refs, "the kept thread is still found by its remaining message's ids"
    assert all(ref["thread_ids"] == [secret.id] for ref in refs)
    assert thread_ref_id(ws.id, "message-id", "<later-9c1@client.test>") in {r["_id"] for r in refs}
    decisions = await ws.store.capture_decisions.find({})
    assert [d["message_id"] for d in decisions] == ["<later-9c1@client.test>"]
    requests = await ws.store.send_requests.find({})
    assert [r["mailbox_id"] for r in requests] == [stays.id]
    assert await load_attachment(ws.store, only_gone.attachment_id) is None
    assert await load_attachment(ws.store, shared.attachment_id) == b"shared 9c1"
    stored = await ws.store.mailboxes.find_one({"_id": gone.id})
    assert stored is not None
    assert stored["erased_at"] is not None
