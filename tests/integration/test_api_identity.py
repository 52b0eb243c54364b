"""People, roles, API keys and the permission of every route, tried as a matrix."""

import asyncio
import hashlib
import re
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_api.permissions import PERMISSIONS, ROLES, SCOPES, Role
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import SystemCollections
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
    api_routes,
    api_settings,
    bearer,
    invite,
    running_api,
    system_key,
    ws_fixture,
)
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

FORBIDDEN = "https://mailsync.dev/problems/forbidden"
# Values for path parameters that must be one of a fixed set; any other parameter gets an id
# that exists nowhere, so the matrix changes nothing.
FIXED_PATH_VALUES = {"record_type": "contacts", "dataset": "contacts"}


def fill(path: str) -> str:
    return re.sub(
        r"\{(\w+)\}", lambda match: FIXED_PATH_VALUES.get(match.group(1), "nosuchid0"), path
    )


async def test_workspace_creation_makes_an_owner_whose_key_is_stored_hashed(
    api: httpx.AsyncClient, api_db: AsyncDatabase[Document]
) -> None:
    response = await api.post(
        "/v1/workspaces",
        json={"name": "Acme", "owner": {"email": "Olga@acme.test", "name": "Olga"}},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    me = await api.get("/v1/me", headers=bearer(body["api_key"]))
    assert me.status_code == 200
    assert me.json()["role"] == "owner"
    assert me.json()["user"] == {**me.json()["user"], "email": "olga@acme.test", "name": "Olga"}
    assert me.json()["user"]["id"] == body["owner_user_id"]
    stored = await SystemCollections(api_db).api_keys.find_one({"workspace_id": body["id"]})
    assert stored is not None
    assert stored["key_hash"] == hashlib.sha256(body["api_key"].encode()).hexdigest()
    assert stored["user_id"] == body["owner_user_id"]


async def test_operator_token_guards_workspace_creation_when_set(
    infra: Infra, secret_key: str
) -> None:
    settings = api_settings(infra, secret_key, operator_token="op-secret-token")
    async for client in running_api(settings):
        missing = await client.post("/v1/workspaces", json={"name": "Acme"})
        wrong = await client.post(
            "/v1/workspaces", json={"name": "Acme"}, headers=bearer("op-wrong")
        )
        right = await client.post(
            "/v1/workspaces", json={"name": "Acme"}, headers=bearer("op-secret-token")
        )

        assert missing.status_code == 401
        assert wrong.status_code == 401
        assert right.status_code == 201
        not_a_workspace_key = await client.get("/v1/me", headers=bearer("op-secret-token"))
        assert not_a_workspace_key.status_code == 401


async def test_invited_people_get_a_token_acting_with_their_role(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    viewer = await invite(api, ws, "viewer", "vera@acme.test")

    me = await api.get("/v1/me", headers=bearer(viewer["token"]))
    write = await api.post(
        "/v1/contacts", json={"emails": ["x@client.test"]}, headers=bearer(viewer["token"])
    )
    read = await api.get("/v1/contacts", headers=bearer(viewer["token"]))
    again = await api.post(
        "/v1/users", json={"email": "vera@acme.test", "role": "member"}, headers=ws.auth
    )

    assert me.json()["role"] == "viewer"
    assert me.json()["scopes"] == ["read"]
    assert write.status_code == 403
    assert write.json()["type"] == FORBIDDEN
    assert read.status_code == 200
    assert again.status_code == 409


async def test_nobody_grants_a_role_above_their_own_and_the_last_owner_stays(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    admin = await invite(api, ws, "admin")
    me = (await api.get("/v1/me", headers=ws.auth)).json()

    as_admin = bearer(admin["token"])
    make_owner = await api.post(
        "/v1/users", json={"email": "new@acme.test", "role": "owner"}, headers=as_admin
    )
    demote_owner = await api.patch(
        f"/v1/users/{me['user']['id']}", json={"role": "member"}, headers=as_admin
    )
    demote_last_owner = await api.patch(
        f"/v1/users/{me['user']['id']}", json={"role": "admin"}, headers=ws.auth
    )
    remove_last_owner = await api.delete(f"/v1/users/{me['user']['id']}", headers=ws.auth)

    assert make_owner.status_code == 403
    assert demote_owner.status_code == 403
    assert demote_last_owner.status_code == 409
    assert remove_last_owner.status_code == 409


async def test_removing_a_person_revokes_their_tokens(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    member = await invite(api, ws, "member")
    assert (await api.get("/v1/me", headers=bearer(member["token"]))).status_code == 200

    removed = await api.delete(f"/v1/users/{member['id']}", headers=ws.auth)

    assert removed.status_code == 204
    assert (await api.get("/v1/me", headers=bearer(member["token"]))).status_code == 401


async def test_api_keys_are_scoped_listed_without_secrets_and_revocable(
    api: httpx.AsyncClient, ws: ApiWorkspace, api_db: AsyncDatabase[Document]
) -> None:
    created = await api.post(
        "/v1/api-keys", json={"name": "CRM", "scopes": ["read", "read"]}, headers=ws.auth
    )
    assert created.status_code == 201, created.text
    key = created.json()
    auth = bearer(key["key"])

    read = await api.get("/v1/contacts", headers=auth)
    write = await api.post("/v1/contacts", json={"emails": ["k@client.test"]}, headers=auth)
    listed = await api.get("/v1/api-keys", headers=ws.auth)
    stored = await SystemCollections(api_db).api_keys.find_one({"_id": key["id"]})
    revoked = await api.delete(f"/v1/api-keys/{key['id']}", headers=ws.auth)
    after = await api.get("/v1/contacts", headers=auth)

    assert key["scopes"] == ["read"]
    assert read.status_code == 200
    assert write.status_code == 403
    assert key["key"] not in listed.text
    assert {item["id"] for item in listed.json()} >= {key["id"]}
    assert stored is not None
    assert key["key"] not in str(stored)
    assert revoked.status_code == 204
    assert after.status_code == 401


async def test_unknown_scopes_and_roles_are_refused_by_name(
    api: httpx.AsyncClient, ws: ApiWorkspace
) -> None:
    scope = await api.post("/v1/api-keys", json={"name": "x", "scopes": ["root"]}, headers=ws.auth)
    role = await api.post(
        "/v1/users", json={"email": "r@acme.test", "role": "god"}, headers=ws.auth
    )

    assert scope.status_code == 422
    assert scope.json()["invalid_params"][0]["name"] == "body.scopes.0"
    assert role.status_code == 422
    assert role.json()["invalid_params"][0]["name"] == "body.role"


async def test_every_route_answers_each_role_and_scope_as_the_table_says(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, secret_key: str
) -> None:
    principals: dict[str, tuple[dict[str, str], Role | None, set[str]]] = {}
    for role in ROLES:
        token = ws.api_key if role == "owner" else (await invite(api, ws, role))["token"]
        principals[f"role:{role}"] = (bearer(token), role, set())
    for scope in SCOPES:
        principals[f"scope:{scope}"] = (bearer(await system_key(api, ws, [scope])), None, {scope})

    async def mismatch(method: str, path: str, name: str) -> tuple[str, str, str, object] | None:
        rule = PERMISSIONS[(method, path)]
        headers, acting_role, scopes = principals[name]
        if acting_role is not None:
            expected = ROLES.index(acting_role) >= ROLES.index(rule.role or "viewer")
        else:
            expected = rule.scope is None or rule.scope in scopes
        body: dict[str, Any] | None = {} if method in {"POST", "PUT", "PATCH"} else None
        try:
            response = await asyncio.wait_for(
                api.request(method, fill(path), headers=headers, json=body), timeout=30
            )
        except TimeoutError:
            return (method, path, name, "timeout")
        denied = response.status_code == 403 and response.json().get("type") == FORBIDDEN
        if response.status_code == 401 or denied == expected:
            return (method, path, name, response.status_code)
        return None

    mismatches: list[tuple[str, str, str, object]] = []
    for method, path in api_routes(api_settings(infra, secret_key)):
        if PERMISSIONS[(method, path)].access != "workspace":
            continue
        results = await asyncio.gather(*(mismatch(method, path, name) for name in principals))
        mismatches.extend(result for result in results if result is not None)

    assert mismatches == []
