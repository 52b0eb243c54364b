"""Workspaces, API keys, health and the published API documents, against the real services."""

import hashlib
import logging

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import SystemCollections
from mailsync_shared.topology import PUBLIC_EVENTS
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
    ws_fixture,
)

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"


async def test_creating_a_workspace_returns_a_key_once_and_stores_only_its_hash(
    api: httpx.AsyncClient, api_db: AsyncDatabase[Document]
) -> None:
    response = await api.post("/v1/workspaces", json={"name": "Acme", "domains": ["ACME.test"]})

    assert response.status_code == 201
    body = response.json()
    assert body["name"] == "Acme"
    assert body["domains"] == ["acme.test"]
    assert body["api_key"].startswith("msk_")
    stored = await SystemCollections(api_db).api_keys.find_one({"workspace_id": body["id"]})
    assert stored is not None
    assert stored["key_hash"] == hashlib.sha256(body["api_key"].encode()).hexdigest()
    assert body["api_key"] not in str(stored)

    mine = await api.get("/v1/workspace", headers={"Authorization": f"Bearer {body['api_key']}"})
    assert mine.status_code == 200
    assert mine.json()["id"] == body["id"]
    assert "api_key" not in mine.json()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer msk_not-a-real-key"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
    ],
    ids=["missing", "unknown-key", "wrong-scheme", "empty"],
)
async def test_requests_without_a_valid_key_get_a_401_problem(
    api: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    for path in ("/v1/workspace", "/v1/contacts", "/v1/mailboxes", "/v1/threads"):
        response = await api.get(path, headers=headers)

        assert response.status_code == 401, path
        assert response.headers["content-type"] == PROBLEM
        assert response.headers["www-authenticate"].startswith("Bearer")
        problem = response.json()
        assert problem["status"] == 401
        assert problem["title"] == "Unauthorized"
        assert problem["instance"] == path


async def test_workspace_name_is_required_and_the_problem_names_the_field(
    api: httpx.AsyncClient,
) -> None:
    response = await api.post("/v1/workspaces", json={"domains": ["acme.test"]})

    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert [param["name"] for param in problem["invalid_params"]] == ["body.name"]
    assert "body.name" in problem["detail"]


async def test_every_response_carries_a_request_id(api: httpx.AsyncClient) -> None:
    given = await api.get("/health/live", headers={"X-Request-ID": "req-123"})
    generated = await api.get("/health/live")

    assert given.headers["x-request-id"] == "req-123"
    assert len(generated.headers["x-request-id"]) == 32


async def test_health_reports_live_and_ready(api: httpx.AsyncClient) -> None:
    live = await api.get("/health/live")
    ready = await api.get("/health/ready")

    assert live.status_code == 200
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}


async def test_asyncapi_document_lists_every_public_event(api: httpx.AsyncClient) -> None:
    response = await api.get("/asyncapi.json")

    assert response.status_code == 200
    document = response.json()
    assert document["asyncapi"].startswith("3.")
    assert set(document["channels"]) == {event.event_type for event in PUBLIC_EVENTS}
    for channel in document["channels"].values():
        assert channel["bindings"]["amqp"]["exchange"]["name"] == "mailsync.events"
    assert "guest" not in response.text


async def test_openapi_documents_problems_for_validation_errors(api: httpx.AsyncClient) -> None:
    response = await api.get("/openapi.json")

    assert response.status_code == 200
    schema = response.json()
    assert "Problem" in schema["components"]["schemas"]
    create_contact = schema["paths"]["/v1/contacts"]["post"]
    assert set(create_contact["responses"]["422"]["content"]) == {PROBLEM}
    assert "HTTPValidationError" not in schema["components"]["schemas"]


async def test_unknown_paths_answer_with_a_problem(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    response = await api.get("/v1/nothing-here", headers=ws.auth)

    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


async def test_access_log_carries_the_request_id_and_workspace_but_never_the_key(
    api: httpx.AsyncClient, ws: ApiWorkspace, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="mailsync_api"):
        response = await api.post(
            "/v1/contacts",
            json={"emails": ["ann@client.test"]},
            headers={**ws.auth, "X-Request-ID": "req-log-1"},
        )

    assert response.status_code == 201
    access = [record for record in caplog.records if record.name == "mailsync_api.access"]
    assert len(access) == 1
    assert access[0].__dict__["request_id"] == "req-log-1"
    assert access[0].__dict__["workspace_id"] == ws.id
    assert access[0].__dict__["status"] == 201
    for record in caplog.records:
        assert ws.api_key not in str(record.__dict__)
        assert "ann@client.test" not in str(record.__dict__)
