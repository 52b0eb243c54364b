"""No route leaks across workspaces; operator injection and oversized bodies are refused.

Routes are enumerated from the app, so a route added later is tried without editing this
file; a new path parameter must be given a value below, or the test fails.
"""

import re
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.contracts.mail import Address
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import SendRequestDocument
from mailsync_shared.webhooks.documents import DELIVERIES, WebhookDeliveryDocument
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
    api_routes,
    api_settings,
    insert_mail,
    mailbox_document,
    other_ws_fixture,
    owned_mailbox,
    ws_fixture,
)
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

T0 = datetime(2025, 5, 1, 9, 0, tzinfo=UTC)
# Routes that create or replace in the caller's own workspace under a key the caller chose.
CALLER_NAMESPACE = re.compile(r"/by-external-id/")


async def seed(api: httpx.AsyncClient, ws: ApiWorkspace) -> dict[str, str]:
    """One of everything in `ws`; returns the values a path parameter of each kind takes."""
    company = await api.post(
        "/v1/companies",
        json={"name": "Secret Co", "domains": ["secret.test"], "external_id": "ext-co"},
        headers=ws.auth,
    )
    contact = await api.post(
        "/v1/contacts",
        json={"name": "Sam Secret", "emails": ["sam@secret.test"], "external_id": "ext-1"},
        headers=ws.auth,
    )
    deal = await api.post(
        "/v1/deals",
        json={"name": "Secret deal", "contact_ids": [contact.json()["id"]]},
        headers=ws.auth,
    )
    mailbox = mailbox_document(ws.id, "owner@secret.test", status={"state": "disconnected"})
    await ws.store.mailboxes.insert_one(mailbox.to_document())
    thread = await insert_mail(
        ws,
        [mailbox.id],
        subject="Secret subject",
        at=T0,
        participants=("owner@secret.test", "sam@secret.test"),
        contact_ids=[contact.json()["id"]],
    )
    send_request = SendRequestDocument(
        workspace_id=ws.id,
        mailbox_id=mailbox.id,
        idempotency_key="secret-key",
        from_=Address(address="owner@secret.test"),
        to=[Address(address="sam@secret.test")],
        subject="Secret subject",
        body_text="secret body",
        message_id="<secret@secret.test>",
    )
    await ws.store.send_requests.insert_one(send_request.to_document())
    webhook = await api.post(
        "/v1/webhooks", json={"url": "http://127.0.0.1:9/secret-hooks"}, headers=ws.auth
    )
    delivery = WebhookDeliveryDocument(
        _id=WebhookDeliveryDocument.id_for(webhook.json()["id"], "secret-event"),
        workspace_id=ws.id,
        subscription_id=webhook.json()["id"],
        event_id="secret-event",
        event_type="mailsync.email.logged.v1",
        seq=1,
        body='{"id": "secret-event", "data": {"subject": "Secret subject"}}',
        state="failed",
    )
    await ws.store.collection(DELIVERIES).insert_one(delivery.to_document())
    me = (await api.get("/v1/me", headers=ws.auth)).json()
    for response in (company, contact, deal, webhook):
        assert response.status_code == 201, response.text
    return {
        "company_id": company.json()["id"],
        "contact_id": contact.json()["id"],
        "deal_id": deal.json()["id"],
        "mailbox_id": mailbox.id,
        "thread_id": thread.id,
        "logged_message_id": await logged_message_id(ws, thread.id),
        "send_request_id": send_request.id,
        "webhook_id": webhook.json()["id"],
        "delivery_id": delivery.id,
        "key_id": me["key_id"],
        "user_id": me["user"]["id"],
        "external_id": "ext-1",
        "confirm": "owner@secret.test",
        "address": "owner@secret.test",
    }


async def logged_message_id(ws: ApiWorkspace, thread_id: str) -> str:
    message = await ws.store.messages.find_one({"thread_id": thread_id})
    assert message is not None
    return str(message["_id"])


def request_example(openapi: dict[str, Any], method: str, path: str) -> Any:
    if path not in openapi["paths"]:
        return None  # served outside the documented api (/metrics) and takes no body
    operation = openapi["paths"][path][method.lower()]
    content = operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    media = content["application/json"]
    if "example" in media:
        return media["example"]
    ref = media["schema"].get("$ref", "")
    schema = openapi["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {})
    examples = schema.get("examples") or [{}]
    return examples[0]


async def test_no_route_answers_with_another_workspaces_data(
    api: httpx.AsyncClient, ws: ApiWorkspace, other_ws: ApiWorkspace, infra: Infra, secret_key: str
) -> None:
    theirs = await seed(api, ws)
    secrets = {value for key, value in theirs.items() if key.endswith("_id")} | {
        "Secret subject",
        "sam@secret.test",
        "Sam Secret",
    }
    openapi = (await api.get("/openapi.json")).json()
    fixed = {"record_type": "contacts", "dataset": "contacts", "name": "htmx.min.js"}

    leaks = []
    for method, path in api_routes(api_settings(infra, secret_key)):
        params = re.findall(r"\{(\w+)\}", path)
        has_ids = any(param not in fixed for param in params)
        if method != "GET" and not has_ids:
            continue  # creates in the caller's workspace; addresses nothing of theirs
        unknown = [p for p in params if p not in fixed and p not in theirs]
        assert unknown == [], f"{method} {path}: give the parameters {unknown} a value"
        url = re.sub(r"\{(\w+)\}", lambda m: fixed.get(m.group(1)) or theirs[m.group(1)], path)
        query: dict[str, str] = {}
        if path == "/v1/exports/{dataset}":
            query = {"record_type": "contact", "record_id": theirs["contact_id"]}
        if path.endswith("/synced-data"):
            query = {"confirm": theirs["confirm"]}
        body = request_example(openapi, method, path)
        response = await api.request(method, url, params=query, headers=other_ws.auth, json=body)
        asked = url + str(query)  # a problem's `instance` echoes the path asked for
        exposed = sorted(s for s in secrets if s in response.text and s not in asked)
        addressed_theirs = has_ids and not CALLER_NAMESPACE.search(path)
        if exposed or (addressed_theirs and response.status_code not in (403, 404)):
            leaks.append((method, path, response.status_code, exposed or response.text[:200]))

    assert leaks == []
    # And nothing of theirs was changed by the attempts.
    contact = await api.get(f"/v1/contacts/{theirs['contact_id']}", headers=ws.auth)
    assert contact.json()["name"] == "Sam Secret"
    assert await ws.store.messages.count() == 1


async def test_operator_injection_in_any_json_field_is_refused_naming_the_field(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, secret_key: str
) -> None:
    openapi = (await api.get("/openapi.json")).json()
    schemas = openapi["components"]["schemas"]
    accepted = []
    tried = 0
    for method, path in api_routes(api_settings(infra, secret_key)):
        if method not in {"POST", "PUT", "PATCH"}:
            continue
        if path not in openapi["paths"]:
            continue  # the console's forms: no JSON body, read by the api's own schemas
        content = openapi["paths"][path][method.lower()].get("requestBody", {}).get("content", {})
        ref = content.get("application/json", {}).get("schema", {}).get("$ref")
        if ref is None:
            continue
        url = re.sub(r"\{(\w+)\}", "nosuchid0", path)
        for field, schema in schemas[ref.rsplit("/", 1)[-1]].get("properties", {}).items():
            is_list = schema.get("type") == "array" or any(
                option.get("type") == "array" for option in schema.get("anyOf", [])
            )
            value: Any = [{"$ne": None}] if is_list else {"$ne": None}
            response = await api.request(method, url, json={field: value}, headers=ws.auth)
            tried += 1
            names = [param["name"] for param in response.json().get("invalid_params", [])]
            if response.status_code != 422 or not any(
                name.startswith(f"body.{field}") for name in names
            ):
                accepted.append((method, path, field, response.status_code))

    assert tried > 50
    assert accepted == []


async def test_operator_injection_in_query_strings_is_taken_literally(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    mailbox = await owned_mailbox(ws)
    thread = await insert_mail(ws, [mailbox.id], subject="Quarterly review", at=T0)
    injection = '{"$ne": null}'
    found = await api.get("/v1/threads", params={"subject": "quarterly"}, headers=ws.auth)
    assert [item["id"] for item in found.json()["items"]] == [thread.id], "the thread is visible"

    for name in ("participant", "subject"):
        response = await api.get("/v1/threads", params={name: injection}, headers=ws.auth)
        assert response.status_code == 200
        assert response.json()["items"] == [], name
    for name in ("since", "until", "cursor", "limit", "unassigned"):
        response = await api.get("/v1/threads", params={name: injection}, headers=ws.auth)
        assert response.status_code == 422, name
    subject_regex = await api.get("/v1/threads", params={"subject": ".*"}, headers=ws.auth)
    assert subject_regex.json()["items"] == []


async def test_oversized_bodies_get_a_413_problem(
    api: httpx.AsyncClient, ws: ApiWorkspace, api_db: AsyncDatabase[Document]
) -> None:
    big = b'{"emails": ["a@b.test"], "name": "' + b"x" * 2_100_000 + b'"}'

    declared = await api.post(
        "/v1/contacts", content=big, headers={**ws.auth, "content-type": "application/json"}
    )

    async def chunks() -> Any:
        for start in range(0, len(big), 100_000):
            yield big[start : start + 100_000]

    streamed = await api.post(
        "/v1/contacts", content=chunks(), headers={**ws.auth, "content-type": "application/json"}
    )

    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 413
    assert await ws.store.contacts.count() == 0


async def test_page_size_is_capped(api: httpx.AsyncClient, ws: ApiWorkspace) -> None:
    too_big = await api.get("/v1/contacts", params={"limit": 101}, headers=ws.auth)
    largest = await api.get("/v1/contacts", params={"limit": 100}, headers=ws.auth)

    assert too_big.status_code == 422
    assert too_big.json()["invalid_params"][0]["name"] == "query.limit"
    assert largest.status_code == 200
