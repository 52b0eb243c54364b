"""Mail hidden from a reader stays hidden on every path that derives something from it.

One conversation is seen in two mailboxes: its first message in Bob's `workspace` mailbox
(and Alice's private one), its last only in Alice's `private` mailbox. Carol, a member with a
mailbox of her own, may read the first message whole and nothing of the last: not through the
thread's fields, its search filters, reply and forward, suggestions, capture decisions,
exports or send requests. Folder totals of a private mailbox are its owner's alone.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from mailsync_shared.contracts.mail import Address
from mailsync_shared.storage.capture_rules import CaptureDecisionDocument
from mailsync_shared.storage.documents import (
    MailboxDocument,
    MessageDocument,
    SendRequestDocument,
    ThreadDocument,
)
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
    bearer,
    invite,
    mailbox_document,
    ws_fixture,
)

pytestmark = pytest.mark.integration

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)
ANN = "ann@client.test"
ALICE = "alice@acme.test"
BOB = "bob@acme.test"
CAROL = "carol@acme.test"
SECRET_SUBJECT = "Layoffs in Q3"
SECRET_BODY = "the list of names"
SECRET_PERSON = "hr-counsel@law.test"
SECRET_BCC = "board@acme-holding.test"
OPEN_SUBJECT = "Renewal offer"
OPEN_BODY = "Here is the renewal offer."


@dataclass(frozen=True)
class Office:
    """Alice (private mailbox), Bob (workspace mailbox), Carol (a mailbox of her own)."""

    ws: ApiWorkspace
    people: dict[str, dict[str, str]]
    mailboxes: dict[str, MailboxDocument]

    def auth(self, name: str) -> dict[str, str]:
        return bearer(self.people[name]["token"])


async def office(api: httpx.AsyncClient, ws: ApiWorkspace) -> Office:
    people = {name: await invite(api, ws, "member") for name in ("alice", "bob", "carol")}
    visibility = {"alice": "private", "bob": "workspace", "carol": "private"}
    address = {"alice": ALICE, "bob": BOB, "carol": CAROL}
    mailboxes = {}
    for name, person in people.items():
        mailbox = mailbox_document(
            ws.id, address[name], owner_user_id=person["id"], visibility=visibility[name]
        )
        await ws.store.mailboxes.insert_one(mailbox.to_document())
        mailboxes[name] = mailbox
    return Office(ws, people, mailboxes)


def message(
    thread: ThreadDocument,
    mailboxes: list[MailboxDocument],
    n: int,
    *,
    subject: str,
    body: str,
    sender: str = ANN,
    to: tuple[str, ...] = (ALICE,),
    bcc: tuple[str, ...] = (),
) -> MessageDocument:
    return MessageDocument(
        workspace_id=thread.workspace_id,
        message_id=f"<{thread.id}.{n}@client.test>",
        thread_id=thread.id,
        mailbox_ids=[mailbox.id for mailbox in mailboxes],
        direction="received",
        from_=Address(address=sender),
        to=[Address(address=a) for a in to],
        bcc=[Address(address=a) for a in bcc],
        subject=subject,
        date=T0 + timedelta(hours=n),
        body_text=body,
        raw_id=f"raw-{thread.id}-{n}",
    )


async def conversation(
    office: Office, messages: list[tuple[list[str], dict[str, Any]]], **fields: Any
) -> tuple[ThreadDocument, list[MessageDocument]]:
    """A thread stored the way associate stores it: its fields gathered from every message."""
    thread = ThreadDocument(workspace_id=office.ws.id, **fields)
    stored = [
        message(thread, [office.mailboxes[name] for name in names], n, **values)
        for n, (names, values) in enumerate(messages)
    ]
    participants = [
        a.address for m in stored for a in [m.from_, *m.to, *m.cc, *m.bcc] if a is not None
    ]
    thread = thread.model_copy(
        update={
            "subject": stored[0].subject,
            "participants": list(dict.fromkeys(participants)),
            "mailbox_ids": list(dict.fromkeys(i for m in stored for i in m.mailbox_ids)),
            "message_ids": [m.message_id for m in stored],
            "logged_message_ids": [m.message_id for m in stored],
            "message_count": len(stored),
            "first_message_at": stored[0].date,
            "last_message_at": stored[-1].date,
        }
    )
    await office.ws.store.threads.insert_one(thread.to_document())
    for m in stored:
        await office.ws.store.messages.insert_one(m.to_document())
        await office.ws.store.raw_messages.insert_one(
            {
                "_id": m.raw_id,
                "size": 10,
                "data": f"Subject: {m.subject}\r\n\r\n{m.body_text}".encode(),
            }
        )
    return thread, stored


async def last_only_private(office: Office) -> tuple[ThreadDocument, list[MessageDocument]]:
    """Open first message (Bob and Alice), hidden last one (Alice only), a Bcc on it."""
    return await conversation(
        office,
        [
            (["bob", "alice"], {"subject": OPEN_SUBJECT, "body": OPEN_BODY, "to": (ALICE, BOB)}),
            (
                ["alice"],
                {
                    "subject": SECRET_SUBJECT,
                    "body": SECRET_BODY,
                    "sender": SECRET_PERSON,
                    "to": (ALICE,),
                    "bcc": (SECRET_BCC,),
                },
            ),
        ],
    )


def no_secret(text: str) -> None:
    for secret in (SECRET_SUBJECT, SECRET_BODY, SECRET_PERSON, SECRET_BCC):
        assert secret not in text, secret


async def test_forward_and_reply_default_to_the_last_message_the_caller_may_read(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    o = await office(api, ws)
    thread, (first, hidden) = await last_only_private(o)
    carol_mailbox = o.mailboxes["carol"].id

    forward = await api.post(
        f"/v1/threads/{thread.id}/forward",
        json={"to": [{"address": "out@elsewhere.test"}], "mailbox_id": carol_mailbox},
        headers=o.auth("carol"),
    )
    named = await api.post(
        f"/v1/threads/{thread.id}/forward",
        json={
            "to": [{"address": "out@elsewhere.test"}],
            "mailbox_id": carol_mailbox,
            "message_id": hidden.message_id,
        },
        headers=o.auth("carol"),
    )
    reply = await api.post(
        f"/v1/threads/{thread.id}/reply",
        json={"body_text": "Thanks", "mailbox_id": carol_mailbox, "reply_all": True},
        headers=o.auth("carol"),
    )

    assert forward.status_code == 202, forward.text
    assert forward.json()["forward_of"] == first.message_id
    assert forward.json()["subject"] == f"Fwd: {OPEN_SUBJECT}"
    assert named.status_code == 422, "a hidden message is as if it were not in the thread"
    assert reply.status_code == 202, reply.text
    assert reply.json()["in_reply_to"] == [first.message_id]
    assert reply.json()["subject"] == f"Re: {OPEN_SUBJECT}"
    for response in (forward, named, reply):
        no_secret(response.text)
    stored = await ws.store.send_requests.find({"mailbox_id": carol_mailbox})
    assert {r["forward_of"]["raw_id"] for r in stored if r.get("forward_of")} == {first.raw_id}
    no_secret(json.dumps(stored, default=str))


async def test_reply_where_no_message_is_readable_whole_is_refused_without_its_headers(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    o = await office(api, ws)
    await ws.store.mailboxes.update_one(
        {"_id": o.mailboxes["bob"].id}, {"$set": {"visibility": "subject"}}
    )
    thread, _ = await conversation(
        o,
        [
            (["bob"], {"subject": OPEN_SUBJECT, "body": OPEN_BODY, "to": (BOB,)}),
            (["alice"], {"subject": SECRET_SUBJECT, "body": SECRET_BODY, "sender": SECRET_PERSON}),
        ],
    )

    reply = await api.post(
        f"/v1/threads/{thread.id}/reply",
        json={"body_text": "Thanks", "mailbox_id": o.mailboxes["carol"].id},
        headers=o.auth("carol"),
    )

    assert reply.status_code == 403, reply.text
    assert reply.json()["access"] == "subject"
    no_secret(reply.text)
    assert await ws.store.send_requests.count() == 0


async def test_thread_fields_and_filters_come_from_the_messages_the_caller_may_see(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    o = await office(api, ws)
    thread, (first, _) = await last_only_private(o)
    reason = {"record_type": "contact", "record_id": "c1", "reason": f"{SECRET_BCC} took part"}
    await ws.store.threads.update_one({"_id": thread.id}, {"$set": {"link_reasons": [reason]}})

    seen = (await api.get(f"/v1/threads/{thread.id}", headers=o.auth("carol"))).json()
    owners = (await api.get(f"/v1/threads/{thread.id}", headers=o.auth("alice"))).json()
    searches = {
        name: await api.get("/v1/threads", params=params, headers=o.auth("carol"))
        for name, params in {
            "bcc": {"participant": SECRET_BCC},
            "hidden sender": {"participant": SECRET_PERSON},
            "hidden subject": {"subject": "Layoffs"},
            "hidden date": {"since": (T0 + timedelta(minutes=30)).isoformat()},
        }.items()
    }
    found = await api.get("/v1/threads", params={"participant": BOB}, headers=o.auth("carol"))

    assert (seen["subject"], seen["message_count"]) == (OPEN_SUBJECT, 1)
    assert seen["participants"] == [ANN, ALICE, BOB]
    assert seen["last_message_at"] == seen["first_message_at"]
    assert seen["last_message_at"].startswith(T0.isoformat()[:19])
    assert [m["message_id"] for m in seen["messages"]] == [first.message_id]
    no_secret(json.dumps(seen))
    assert {name: r.json()["items"] for name, r in searches.items()} == {
        name: [] for name in searches
    }
    assert [t["id"] for t in found.json()["items"]] == [thread.id]
    no_secret(found.text)
    assert [link["reason"] for link in seen["links"]] == ["[address] took part"]
    assert owners["message_count"] == 2, "the owner of the private mailbox sees it all"
    assert SECRET_BCC in owners["participants"]
    owner_search = await api.get(
        "/v1/threads", params={"participant": SECRET_BCC}, headers=o.auth("alice")
    )
    assert [t["id"] for t in owner_search.json()["items"]] == [thread.id]


async def test_a_hidden_first_message_gives_neither_subject_nor_existence(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    o = await office(api, ws)
    thread, _ = await conversation(
        o,
        [
            (["alice"], {"subject": SECRET_SUBJECT, "body": SECRET_BODY}),
            (["bob"], {"subject": f"Re: {OPEN_SUBJECT}", "body": OPEN_BODY, "to": (BOB,)}),
        ],
    )
    # Stored as if Bob's copy was erased but the thread kept his mailbox.
    ghost, _ = await conversation(o, [(["alice"], {"subject": SECRET_SUBJECT, "body": "x"})])
    await ws.store.threads.update_one(
        {"_id": ghost.id},
        {"$set": {"mailbox_ids": [o.mailboxes["alice"].id, o.mailboxes["bob"].id]}},
    )

    seen = (await api.get(f"/v1/threads/{thread.id}", headers=o.auth("carol"))).json()
    by_subject = await api.get(
        "/v1/threads", params={"subject": "layoffs"}, headers=o.auth("carol")
    )
    listed = await api.get("/v1/threads", headers=o.auth("carol"))
    ghost_read = await api.get(f"/v1/threads/{ghost.id}", headers=o.auth("carol"))
    export = await api.get("/v1/exports/threads", params={"format": "json"}, headers=ws.auth)

    assert seen["subject"] == f"Re: {OPEN_SUBJECT}"
    assert by_subject.json()["items"] == []
    assert [t["id"] for t in listed.json()["items"]] == [thread.id]
    assert ghost_read.status_code == 404
    no_secret(listed.text)
    assert export.status_code == 200, export.text
    assert [(t["id"], t["subject"]) for t in export.json()] == [(thread.id, f"Re: {OPEN_SUBJECT}")]
    no_secret(export.text)


async def test_suggestions_rest_only_on_threads_the_caller_may_see(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    o = await office(api, ws)
    contact = await api.post("/v1/contacts", json={"emails": [ANN]}, headers=ws.auth)
    linked, _ = await conversation(
        o,
        [(["alice"], {"subject": SECRET_SUBJECT, "body": SECRET_BODY})],
        contact_ids=[contact.json()["id"]],
    )
    unassigned, _ = await conversation(
        o, [(["bob"], {"subject": OPEN_SUBJECT, "body": OPEN_BODY, "to": (BOB,)})]
    )

    theirs = await api.get(f"/v1/threads/{unassigned.id}/suggestions", headers=o.auth("carol"))
    owners = await api.get(f"/v1/threads/{unassigned.id}/suggestions", headers=o.auth("alice"))

    assert theirs.status_code == 200, theirs.text
    no_secret(theirs.text)
    reasons = {s["reason"] for s in owners.json()["suggestions"]}
    assert f"thread \u201c{SECRET_SUBJECT}\u201d with {ANN} is linked to it" in reasons, (
        f"Alice may be told of her own thread {linked.id}"
    )


async def test_capture_decisions_name_only_mail_the_caller_may_see(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    o = await office(api, ws)
    _, (hidden,) = await conversation(
        o, [(["alice"], {"subject": SECRET_SUBJECT, "body": SECRET_BODY, "bcc": (SECRET_BCC,)})]
    )
    _, (shared,) = await conversation(
        o, [(["bob"], {"subject": OPEN_SUBJECT, "body": OPEN_BODY, "bcc": (SECRET_BCC,)})]
    )
    for m, mailbox in ((hidden, "alice"), (shared, "bob")):
        for address in (ANN, SECRET_BCC):
            decision = CaptureDecisionDocument(
                workspace_id=ws.id,
                address=address,
                decision="skipped",
                rule="free_mail_domain",
                message_id=m.message_id,
                mailbox_id=o.mailboxes[mailbox].id,
            )
            await ws.store.capture_decisions.insert_one(decision.to_document())

    viewer = await invite(api, ws, "viewer")
    about_ann = await api.get(
        "/v1/capture-decisions", params={"address": ANN}, headers=bearer(viewer["token"])
    )
    about_bcc = await api.get(
        "/v1/capture-decisions", params={"address": SECRET_BCC}, headers=bearer(viewer["token"])
    )
    alices = await api.get(
        "/v1/capture-decisions", params={"address": ANN}, headers=o.auth("alice")
    )

    assert about_ann.status_code == 200, about_ann.text
    assert {d["message_id"] for d in about_ann.json()["decisions"]} == {shared.message_id}
    assert hidden.message_id not in about_ann.text
    assert about_bcc.json()["decisions"] == [], "a Bcc recipient is the sender's to know"
    assert about_bcc.json()["current"] is None
    assert {d["message_id"] for d in alices.json()["decisions"]} == {
        hidden.message_id,
        shared.message_id,
    }


async def test_folder_totals_of_a_private_mailbox_are_its_owners(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    o = await office(api, ws)
    folders = {
        "INBOX": {"name": "INBOX", "role": "inbox", "uidvalidity": 1, "total": 57, "done": 12}
    }
    await ws.store.mailboxes.update_one(
        {"_id": o.mailboxes["alice"].id},
        {
            "$set": {
                "folders": folders,
                "status.gaps": [{"folder": "INBOX", "server": 57, "logged": 12, "missing": 45}],
            }
        },
    )

    carols = await api.get(f"/v1/mailboxes/{o.mailboxes['alice'].id}", headers=o.auth("carol"))
    listed = await api.get("/v1/mailboxes", headers=o.auth("carol"))
    alices = await api.get(f"/v1/mailboxes/{o.mailboxes['alice'].id}", headers=o.auth("alice"))

    assert carols.status_code == 200, carols.text
    assert (carols.json()["folders"], carols.json()["status"]["gaps"]) == ([], [])
    (alice_listed,) = [m for m in listed.json() if m["id"] == o.mailboxes["alice"].id]
    assert alice_listed["folders"] == []
    assert [f["total"] for f in alices.json()["folders"]] == [57]


async def test_bcc_of_a_send_request_is_shown_to_its_mailboxs_owner_only(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    o = await office(api, ws)
    request = SendRequestDocument(
        workspace_id=ws.id,
        mailbox_id=o.mailboxes["bob"].id,
        idempotency_key="k-1",
        from_=Address(address=BOB),
        to=[Address(address=ANN)],
        bcc=[Address(address=SECRET_BCC)],
        subject=OPEN_SUBJECT,
        body_text=OPEN_BODY,
        message_id="<k-1@acme.test>",
        requested_by=f"user:{o.people['bob']['id']}",
    )
    await ws.store.send_requests.insert_one(request.to_document())

    carols = await api.get(f"/v1/send-requests/{request.id}", headers=o.auth("carol"))
    carols_list = await api.get("/v1/send-requests", headers=o.auth("carol"))
    bobs = await api.get(f"/v1/send-requests/{request.id}", headers=o.auth("bob"))

    assert carols.status_code == 200, "Bob's mailbox shares everything, so Carol may follow it"
    assert carols.json()["bcc"] == []
    assert [r["id"] for r in carols_list.json()["items"]] == [request.id]
    assert SECRET_BCC not in carols_list.text
    assert [a["address"] for a in bobs.json()["bcc"]] == [SECRET_BCC]
