"""Mailbox visibility on every read of mail: thread list, one thread, record timelines, replies.

Each mailbox visibility is tried with its owner, a colleague and a system API key; a private
thread stays with the owner of its mailbox whatever the visibility.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from mailsync_shared.contracts.mail import Address
from mailsync_shared.storage.documents import MessageDocument
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
    bearer,
    insert_mail,
    invite,
    owned_mailbox,
    system_key,
    ws_fixture,
)

pytestmark = pytest.mark.integration

T0 = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)
SUBJECT = "Pricing for 40 seats"
BODY = "Could you send the offer?"
ANN = "ann@client.test"

# What a viewer who does not own the mailbox sees of an open thread: (access, subject, body);
# None: nothing at all.
SHARED: dict[str, tuple[str, str, str] | None] = {
    "private": None,
    "metadata": ("metadata", "", ""),
    "subject": ("subject", SUBJECT, ""),
    "workspace": ("everything", SUBJECT, BODY),
}
EVERYTHING = ("everything", SUBJECT, BODY)


def seen(thread: dict[str, Any]) -> tuple[str, str, str]:
    """What a viewer got of a thread with one message, after checking its shape held."""
    (message,) = thread["messages"]
    assert message["access"] == thread["access"]
    assert message["subject"] == thread["subject"]
    assert thread["participants"] == [ANN, "owner@acme.test"], "participants always show"
    assert message["from"]["address"] == ANN
    assert message["date"] is not None
    return thread["access"], thread["subject"], message["body_text"]


async def viewers(api: httpx.AsyncClient, ws: ApiWorkspace) -> dict[str, dict[str, str]]:
    member = await invite(api, ws, "member")
    admin = await invite(api, ws, "admin")
    key = await system_key(api, ws, ["read", "send"])
    return {
        "owner": ws.auth,
        "member": bearer(member["token"]),
        "admin": bearer(admin["token"]),
        "system key": bearer(key),
    }


async def get_json(api: httpx.AsyncClient, path: str, headers: dict[str, str]) -> Any:
    response = await api.get(path, headers=headers)
    assert response.status_code == 200, (path, response.text)
    return response.json()


async def created_id(
    api: httpx.AsyncClient, ws: ApiWorkspace, path: str, body: dict[str, Any]
) -> str:
    response = await api.post(path, json=body, headers=ws.auth)
    assert response.status_code == 201, response.text
    record_id: str = response.json()["id"]
    return record_id


@pytest.mark.parametrize("visibility", list(SHARED))
async def test_each_viewer_sees_what_the_mailbox_shares_in_list_thread_and_timeline(
    api: httpx.AsyncClient, ws: ApiWorkspace, visibility: str
) -> None:
    contact = await created_id(api, ws, "/v1/contacts", {"emails": [ANN]})
    mailbox = await owned_mailbox(ws, visibility=visibility)
    thread = await insert_mail(
        ws, [mailbox.id], subject=SUBJECT, at=T0, contact_ids=[contact], body=BODY
    )
    private = await insert_mail(
        ws,
        [mailbox.id],
        subject="Salary",
        at=T0 + timedelta(days=1),
        contact_ids=[contact],
        private=True,
        body="private body",
    )

    for name, headers in (await viewers(api, ws)).items():
        expected = EVERYTHING if name == "owner" else SHARED[visibility]
        listed = (await get_json(api, "/v1/threads", headers))["items"]
        timeline = (await get_json(api, f"/v1/contacts/{contact}/timeline", headers))["items"]
        one = await api.get(f"/v1/threads/{thread.id}", headers=headers)
        hidden = await api.get(f"/v1/threads/{private.id}", headers=headers)

        if name == "owner":
            assert [t["id"] for t in listed] == [private.id, thread.id]
            assert [t["id"] for t in timeline] == [private.id, thread.id]
            assert hidden.status_code == 200, "the owner sees their private thread"
            assert hidden.json()["messages"][0]["body_text"] == "private body"
            listed, timeline = listed[1:], timeline[1:]
        else:
            assert hidden.status_code == 404, (name, "a private thread is hidden")
            assert private.id not in {t["id"] for t in listed + timeline}
        if expected is None:
            assert (listed, timeline) == ([], []), name
            assert one.status_code == 404, name
            assert one.headers["content-type"] == "application/problem+json"
            continue
        assert one.status_code == 200, (name, one.text)
        assert [seen(t) for t in listed] == [expected], (name, "list")
        assert [seen(t) for t in timeline] == [expected], (name, "timeline")
        assert seen(one.json()) == expected, (name, "thread")


async def test_a_mailbox_connected_by_no_person_is_seen_in_full_by_system_keys_only(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    mailbox = await owned_mailbox(ws, "shared@acme.test", owner_user_id=None, visibility="private")
    thread = await insert_mail(ws, [mailbox.id], subject=SUBJECT, at=T0, body=BODY, private=True)
    key = bearer(await system_key(api, ws, ["read"]))

    as_key = await api.get(f"/v1/threads/{thread.id}", headers=key)
    as_owner = await api.get(f"/v1/threads/{thread.id}", headers=ws.auth)

    assert as_key.status_code == 200
    assert as_key.json()["access"] == "everything"
    assert as_key.json()["messages"][0]["body_text"] == BODY
    assert as_owner.status_code == 404, "no person owns it, not even the workspace owner"


async def test_a_message_is_shown_at_the_level_of_the_mailboxes_it_was_seen_in(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    shared = await owned_mailbox(ws, "team@acme.test", visibility="workspace")
    own = await owned_mailbox(ws, "olga@acme.test", visibility="private")
    thread = await insert_mail(ws, [shared.id, own.id], subject=SUBJECT, at=T0, body=BODY)
    aside = MessageDocument(
        workspace_id=ws.id,
        message_id=f"<aside.{thread.id}@acme.test>",
        thread_id=thread.id,
        mailbox_ids=[own.id],
        direction="sent",
        from_=Address(address="olga@acme.test"),
        to=[Address(address=ANN)],
        subject=f"Re: {SUBJECT}",
        date=T0 + timedelta(hours=1),
        body_text="only in my own mailbox",
        raw_id=f"raw-aside-{thread.id}",
    )
    await ws.store.messages.insert_one(aside.to_document())
    member = bearer((await invite(api, ws, "member"))["token"])

    as_member = await get_json(api, f"/v1/threads/{thread.id}", member)
    as_owner = await get_json(api, f"/v1/threads/{thread.id}", ws.auth)

    assert as_member["access"] == "everything"
    assert [m["body_text"] for m in as_member["messages"]] == [BODY]
    assert [m["body_text"] for m in as_owner["messages"]] == [BODY, "only in my own mailbox"]


async def test_pages_count_only_the_threads_the_caller_may_see(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    hidden = await owned_mailbox(ws, "own@acme.test", visibility="private")
    shared = await owned_mailbox(ws, "team@acme.test", visibility="workspace")
    for day in range(3):
        await insert_mail(ws, [hidden.id], subject=f"Mine {day}", at=T0 + timedelta(days=10 + day))
    visible = [
        await insert_mail(ws, [shared.id], subject=f"Ours {day}", at=T0 + timedelta(days=day))
        for day in range(2)
    ]
    member = bearer((await invite(api, ws, "member"))["token"])

    response = await api.get("/v1/threads", params={"limit": 2}, headers=member)

    assert [t["id"] for t in response.json()["items"]] == [visible[1].id, visible[0].id]
    assert response.json()["next_cursor"] is None


@pytest.mark.parametrize(("visibility", "found"), [("metadata", False), ("subject", True)])
async def test_searching_the_subject_reveals_no_hidden_subject(
    api: httpx.AsyncClient, ws: ApiWorkspace, visibility: str, found: bool
) -> None:
    mailbox = await owned_mailbox(ws, visibility=visibility)
    thread = await insert_mail(ws, [mailbox.id], subject=SUBJECT, at=T0)
    member = bearer((await invite(api, ws, "member"))["token"])

    by_subject = await get_json(api, "/v1/threads?subject=pricing", member)
    by_participant = await get_json(api, f"/v1/threads?participant={ANN}", member)
    as_owner = await get_json(api, "/v1/threads?subject=pricing", ws.auth)

    assert [t["id"] for t in by_subject["items"]] == ([thread.id] if found else [])
    assert [t["id"] for t in by_participant["items"]] == [thread.id]
    assert [t["id"] for t in as_owner["items"]] == [thread.id]


@pytest.mark.parametrize(
    ("visibility", "private", "status"),
    [
        ("workspace", False, 403),
        ("subject", False, 403),
        ("metadata", False, 403),
        ("private", False, 404),
        ("workspace", True, 404),
    ],
)
async def test_replying_needs_full_access_to_the_thread(
    api: httpx.AsyncClient, ws: ApiWorkspace, visibility: str, private: bool, status: int
) -> None:
    mailbox = await owned_mailbox(ws, visibility=visibility)
    thread = await insert_mail(ws, [mailbox.id], subject=SUBJECT, at=T0, private=private)
    member = bearer((await invite(api, ws, "member"))["token"])

    response = await api.post(
        f"/v1/threads/{thread.id}/reply", json={"body_text": "Sure."}, headers=member
    )
    as_owner = await api.post(
        f"/v1/threads/{thread.id}/reply", json={"body_text": "Owner."}, headers=ws.auth
    )

    assert response.status_code == status, response.text
    if status == 403 and visibility == "workspace":
        # Reads everything, yet the thread's mailbox is the owner's to send from.
        assert response.json()["type"].endswith("/forbidden")
    elif status == 403:
        assert response.json()["type"].endswith("/not-enough-access")
        assert response.json()["access"] == visibility
    assert as_owner.status_code == 202, as_owner.text
    bodies = sorted(r["body_text"] for r in await ws.store.send_requests.find({}))
    assert bodies == ["Owner."]
