"""Capture rules through the api: preview, apply, explanations, on the real broker and database.

Mail is logged the way associate logs it (its `log_message`, in-process), so the rules are
re-decided over the same documents the services write.
"""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from mailsync_shared.topology import EVENTS_EXCHANGE
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
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
CARL = "carl@partner.test"
BOB = "bob@gmail.com"
DAVE = "dave@client.test"
CAPTURED = "mailsync.contact.captured.v1"
ASSOCIATED = "mailsync.thread.associated.v1"


@pytest.fixture(name="events")
async def events_fixture(infra: Infra, ws: ApiWorkspace) -> AsyncIterator[Tap]:
    async with taps(infra.rabbitmq_url) as tap:
        yield await tap(EVENTS_EXCHANGE.name, f"#.{ws.id}")


async def seed_mail(api: httpx.AsyncClient, ws: ApiWorkspace) -> str:
    """The owner wrote to Ann; Carl, Bob (free mail) and Dave wrote to the owner."""
    mailbox_id = (await owned_mailbox(ws)).id
    await log_email(
        ws,
        mailbox_id,
        build_message(sender=OWNER, to=[ANN], subject="Proposal", body="p"),
        "sent",
    )
    for sender, name in ((CARL, "Carl Partner"), (BOB, "Bob"), (DAVE, "Dave")):
        email = build_message(sender=sender, sender_name=name, to=[OWNER], subject="Hi", body="h")
        await log_email(ws, mailbox_id, email)
    return mailbox_id


def addresses(changes: list[dict[str, Any]]) -> list[str]:
    return sorted(change["address"] for change in changes)


async def test_applying_rules_changes_contacts_exactly_as_previewed(
    api: httpx.AsyncClient, ws: ApiWorkspace, events: Tap
) -> None:
    await seed_mail(api, ws)
    proposed = {"policy": "sent_and_received", "blocked": ["@partner.test"]}

    default = await api.get("/v1/capture-rules", headers=ws.auth)
    preview = await api.post("/v1/capture-rules/preview", json=proposed, headers=ws.auth)

    assert default.status_code == 200
    assert default.json()["is_default"] is True
    assert default.json()["policy"] == "sent"
    assert preview.status_code == 200, preview.text
    previewed = preview.json()
    assert previewed["messages_evaluated"] == 4
    assert addresses(previewed["would_add"]) == [ANN, DAVE]
    assert all(change["reason"] for change in previewed["would_add"])
    assert previewed["would_remove"] == []
    assert await ws.store.contacts.count() == 0, "a preview saves nothing"
    still_default = await api.get("/v1/capture-rules", headers=ws.auth)
    assert still_default.json()["is_default"] is True

    applied = await api.put("/v1/capture-rules", json=proposed, headers=ws.auth)

    assert applied.status_code == 200, applied.text
    result = applied.json()
    assert result["changes"]["would_add"] == previewed["would_add"]
    assert len(result["created_contact_ids"]) == 2
    contacts = await ws.store.contacts.find({})
    assert sorted(e for c in contacts for e in c["emails"]) == [ANN, DAVE]
    assert all(not c.get("outbox") for c in contacts), "every due event was published"
    rules = (await api.get("/v1/capture-rules", headers=ws.auth)).json()
    assert (rules["policy"], rules["blocked"], rules["is_default"]) == (
        "sent_and_received",
        ["@partner.test"],
        False,
    )
    assert rules["updated_by"]
    published = await events.wait_for(
        lambda e: len([x for x in e if x["type"] == CAPTURED]) >= 2, "contact.captured events"
    )
    assert sorted(e["data"]["address"] for e in published if e["type"] == CAPTURED) == [ANN, DAVE]
    ann_thread = await ws.store.threads.find_one({"participants": ANN})
    assert ann_thread is not None
    assert len(ann_thread["contact_ids"]) == 1, "the thread gained the new contact"
    await events.wait_for(
        lambda e: any(x["data"].get("thread_id") == ann_thread["_id"] for x in e), "relinked"
    )

    # Back to the default policy: Dave only wrote to the owner, so he is retracted.
    back = await api.post("/v1/capture-rules/preview", json={}, headers=ws.auth)
    assert addresses(back.json()["would_remove"]) == [DAVE]
    reverted = await api.put("/v1/capture-rules", json={}, headers=ws.auth)
    assert reverted.status_code == 200, reverted.text
    dave = await ws.store.contacts.find_one({"emails": DAVE})
    assert dave is not None
    assert reverted.json()["retracted_contact_ids"] == [dave["_id"]]
    assert dave["retracted_at"] is not None
    assert await ws.store.contacts.count() == 2, "retracted, never deleted"


async def test_patch_changes_only_the_fields_given_and_put_replaces_them_all(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    full = {"policy": "sent", "exclude_free_mail": False, "blocked": ["@partner.test"]}
    assert (await api.put("/v1/capture-rules", json=full, headers=ws.auth)).status_code == 200

    patched = await api.patch(
        "/v1/capture-rules", json={"policy": "sent_and_received"}, headers=ws.auth
    )
    null = await api.patch("/v1/capture-rules", json={"blocked": None}, headers=ws.auth)
    rules = (await api.get("/v1/capture-rules", headers=ws.auth)).json()

    assert patched.status_code == 200, patched.text
    assert (rules["policy"], rules["exclude_free_mail"], rules["blocked"]) == (
        "sent_and_received",
        False,
        ["@partner.test"],
    ), "only the policy changed"
    assert null.status_code == 422
    replaced = await api.put("/v1/capture-rules", json={"policy": "none"}, headers=ws.auth)
    after_put = (await api.get("/v1/capture-rules", headers=ws.auth)).json()
    assert replaced.status_code == 200
    assert (after_put["policy"], after_put["exclude_free_mail"], after_put["blocked"]) == (
        "none",
        True,
        [],
    ), "PUT replaces the whole rule set, defaults for what is left out"


async def test_explain_answers_for_captured_free_mail_and_blocked_addresses(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    await seed_mail(api, ws)
    rules = {"policy": "sent_and_received", "blocked": [CARL]}
    applied = await api.put("/v1/capture-rules", json=rules, headers=ws.auth)
    assert applied.status_code == 200, applied.text

    async def explain(address: str) -> dict[str, Any]:
        response = await api.get(
            "/v1/capture-decisions", params={"address": address}, headers=ws.auth
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    ann, bob, carl = await explain(ANN.upper()), await explain(BOB), await explain(CARL)
    stranger = await explain("nobody@nowhere.test")

    assert ann["address"] == ANN
    assert ann["is_contact"] is True
    assert ann["summary"].startswith(f"{ANN} is a contact, captured from mail")
    assert ann["decisions"][0]["origin"] == "rules_applied"
    assert ann["decisions"][0]["decision"] == "captured"
    assert bob["is_contact"] is False
    assert bob["current"]["rule"] == "free_mail_domain"
    assert "gmail.com is a free-mail provider" in bob["summary"]
    assert carl["is_contact"] is False
    assert carl["current"]["rule"] == "blocked_address"
    assert "block list" in carl["summary"]
    assert stranger["is_contact"] is False
    assert stranger["current"] is None
    assert "no logged message mentions it" in stranger["summary"]


async def test_operator_injection_in_capture_routes_is_refused(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    injection: Any = {"$ne": None}
    bodies: list[tuple[str, dict[str, Any]]] = [
        ("policy", {"policy": injection}),
        ("exclude_free_mail", {"exclude_free_mail": injection}),
        ("blocked", {"blocked": [injection]}),
        ("blocked", {"blocked": injection}),
    ]

    for field, body in bodies:
        for method, path in (("PUT", "/v1/capture-rules"), ("POST", "/v1/capture-rules/preview")):
            response = await api.request(method, path, json=body, headers=ws.auth)
            assert response.status_code == 422, (method, field)
            assert response.headers["content-type"] == "application/problem+json"
            names = [p["name"] for p in response.json()["invalid_params"]]
            assert any(name.startswith(f"body.{field}") for name in names), names
    literal = await api.get(
        "/v1/capture-decisions", params={"address": '{"$ne": null}'}, headers=ws.auth
    )
    assert literal.status_code == 200
    assert literal.json()["is_contact"] is False
    assert literal.json()["current"] is None
    assert (await api.get("/v1/capture-rules", headers=ws.auth)).json()["is_default"] is True


async def test_capture_routes_see_only_the_callers_workspace(
    api: httpx.AsyncClient, ws: ApiWorkspace, other_ws: ApiWorkspace
) -> None:
    await seed_mail(api, ws)
    applied = await api.put(
        "/v1/capture-rules", json={"policy": "sent_and_received"}, headers=ws.auth
    )
    assert applied.status_code == 200

    rules = await api.get("/v1/capture-rules", headers=other_ws.auth)
    preview = await api.post(
        "/v1/capture-rules/preview", json={"policy": "sent_and_received"}, headers=other_ws.auth
    )
    explained = await api.get(
        "/v1/capture-decisions", params={"address": ANN}, headers=other_ws.auth
    )

    assert rules.json()["is_default"] is True
    assert preview.json()["messages_evaluated"] == 0
    assert preview.json()["would_add"] == []
    assert explained.json()["is_contact"] is False
    assert explained.json()["decisions"] == []
    assert ANN not in explained.json()["summary"].replace(f"{ANN} is not a contact", "")
    assert await other_ws.store.contacts.count() == 0
