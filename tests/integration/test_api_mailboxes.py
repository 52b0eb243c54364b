"""Connecting mailboxes through the api against the real Dovecot and SMTP servers."""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.storage.documents import SECRET_FIELDS, MessageDocument
from mailsync_shared.storage.mailbox_changes import change_count
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
    api_settings,
    bearer,
    invite,
    other_ws_fixture,
    ready_account,
    running_api,
    system_key,
    ws_fixture,
)
from tests.support.infra import Infra
from tests.support.mail import MailAccount

pytestmark = pytest.mark.integration


def mailbox_body(infra: Infra, account: MailAccount, **overrides: Any) -> dict[str, Any]:
    server = {"username": account.address, "password": account.password, "security": "none"}
    body: dict[str, Any] = {
        "address": account.address,
        "display_name": "Olga Owner",
        "imap": {**server, "host": infra.imap_host, "port": infra.imap_port},
        "smtp": {**server, "host": infra.smtp_host, "port": infra.smtp_port},
        "sync": {"scope": "all", "backfill_days": 14},
        "visibility": "metadata",
        "append_to_sent": True,
    }
    body.update(overrides)
    return body


@pytest.fixture
async def owner(infra: Infra) -> MailAccount:
    return await ready_account(infra, "acme.test", "owner")


async def connect(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, account: MailAccount
) -> dict[str, Any]:
    response = await api.post("/v1/mailboxes", json=mailbox_body(infra, account), headers=ws.auth)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_connecting_checks_both_logins_and_stores_passwords_only_encrypted(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount, secret_key: str
) -> None:
    response = await api.post("/v1/mailboxes", json=mailbox_body(infra, owner), headers=ws.auth)

    assert response.status_code == 201, response.text
    mailbox = response.json()
    assert mailbox["address"] == owner.address
    assert mailbox["status"]["state"] == "connecting"
    assert mailbox["imap"]["has_credentials"] is True
    assert mailbox["sync"] == {"scope": "all", "backfill_days": 14}
    answers = [
        response,
        await api.get(f"/v1/mailboxes/{mailbox['id']}", headers=ws.auth),
        await api.get("/v1/mailboxes", headers=ws.auth),
        await api.get(f"/v1/mailboxes/{mailbox['id']}/sync-summary", headers=ws.auth),
    ]
    for answer in answers:
        assert answer.status_code == 200 or answer is response
        assert owner.password not in answer.text
        assert "secret" not in answer.text
    stored = await ws.store.mailboxes.find_one({"_id": mailbox["id"]})
    assert stored is not None
    assert owner.password not in str(stored)
    cipher = CredentialCipher(SecretStr(secret_key))
    assert cipher.decrypt(stored["imap"]["secret_encrypted"]) == owner.password
    assert cipher.decrypt(stored["smtp"]["secret_encrypted"]) == owner.password


async def test_a_wrong_imap_password_is_refused_with_the_servers_answer(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount
) -> None:
    wrong = MailAccount(owner.address, "not-the-password")
    body = mailbox_body(infra, wrong)
    body["smtp"]["password"] = owner.password

    response = await api.post("/v1/mailboxes", json=body, headers=ws.auth)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("/mail-server-login-refused")
    assert problem["server"] == "imap"
    assert "AUTHENTICATIONFAILED" in problem["reply"] or "failed" in problem["reply"].lower()
    assert "not-the-password" not in response.text
    assert owner.password not in response.text
    assert await ws.store.mailboxes.count() == 0


async def test_a_wrong_smtp_password_is_refused_naming_the_smtp_server(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount
) -> None:
    body = mailbox_body(infra, owner)
    body["smtp"]["password"] = "not-the-password"

    response = await api.post("/v1/mailboxes", json=body, headers=ws.auth)

    assert response.status_code == 422
    problem = response.json()
    assert problem["server"] == "smtp"
    assert problem["reply"].startswith("535")
    assert "not-the-password" not in response.text
    assert await ws.store.mailboxes.count() == 0


async def test_an_unreachable_server_is_reported(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount
) -> None:
    body = mailbox_body(infra, owner)
    body["imap"]["port"] = 1  # nothing listens there

    response = await api.post("/v1/mailboxes", json=body, headers=ws.auth)

    assert response.status_code == 422
    assert response.json()["type"].endswith("/mail-server-unreachable")
    assert response.json()["server"] == "imap"


@pytest.fixture(scope="module")
async def strict_api(infra: Infra, secret_key: str) -> AsyncIterator[httpx.AsyncClient]:
    """The api as deployed: private and loopback mail hosts refused."""
    async for client in running_api(api_settings(infra, secret_key, allow_private_hosts=False)):
        yield client


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "10.1.2.3", "[::1]", "169.254.169.254"])
async def test_private_hosts_are_refused_unless_allowed(
    strict_api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount, host: str
) -> None:
    body = mailbox_body(infra, owner)
    body["imap"]["host"] = host

    response = await strict_api.post("/v1/mailboxes", json=body, headers=ws.auth)

    assert response.status_code == 422
    problem = response.json()
    assert problem["invalid_params"][0]["name"] == "body.imap.host"
    assert "non-public" in problem["detail"]
    assert await ws.store.mailboxes.count() == 0


async def test_header_line_breaks_in_the_display_name_are_refused(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount
) -> None:
    body = mailbox_body(infra, owner, display_name="Olga\r\nBcc: everyone@else.test")

    response = await api.post("/v1/mailboxes", json=body, headers=ws.auth)

    assert response.status_code == 422
    assert response.json()["invalid_params"][0]["name"] == "body.display_name"


async def test_settings_change_and_the_summary_answers_in_plain_words(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount
) -> None:
    mailbox = await connect(api, ws, infra, owner)

    patched = await api.patch(
        f"/v1/mailboxes/{mailbox['id']}",
        json={"visibility": "private", "sync": {"scope": "all", "backfill_days": None}},
        headers=ws.auth,
    )
    summary = await api.get(f"/v1/mailboxes/{mailbox['id']}/sync-summary", headers=ws.auth)

    assert patched.status_code == 200
    assert patched.json()["visibility"] == "private"
    assert patched.json()["sync"]["backfill_days"] is None
    answers = summary.json()
    assert "older mail is not imported" in answers["what_is_synced"]
    assert owner.address in answers["direction"]
    assert answers["who_can_see"].startswith("Only the mailbox owner")


async def test_the_changes_other_services_keep_copies_of_are_counted(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount
) -> None:
    async def counts() -> tuple[int, int]:
        return (
            await change_count(ws.store, "directory"),
            await change_count(ws.store, "controls"),
        )

    mailbox = await connect(api, ws, infra, owner)
    connected = await counts()
    path = f"/v1/mailboxes/{mailbox['id']}"
    await api.patch(path, json={"display_name": "Olga S."}, headers=ws.auth)
    renamed = await counts()
    await api.patch(
        path, json={"sync": {"scope": "client_only", "backfill_days": 30}}, headers=ws.auth
    )
    scoped = await counts()
    for action in ("resync", "reconcile", "disconnect"):
        assert (await api.post(f"{path}/{action}", headers=ws.auth)).status_code < 300, action

    assert connected == (1, 0)
    assert renamed == (1, 0)  # neither a directory entry nor a control
    assert scoped == (2, 0)
    assert await counts() == (2, 3)


async def test_only_the_owner_widens_a_mailbox_and_admins_may_only_stop_it(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount
) -> None:
    mailbox = await connect(api, ws, infra, owner)
    path = f"/v1/mailboxes/{mailbox['id']}"
    admin = bearer((await invite(api, ws, "admin"))["token"])
    admin_key = bearer(await system_key(api, ws, ["read", "write", "admin"]))

    refusals = [
        await api.patch(path, json={"visibility": "workspace"}, headers=admin),
        await api.patch(path, json={"visibility": "workspace"}, headers=admin_key),
        await api.patch(
            path, json={"sync": {"scope": "all", "backfill_days": 3650}}, headers=admin
        ),
        await api.post(f"{path}/aliases", json={"address": "ceo@acme.test"}, headers=admin),
        await api.post(f"{path}/aliases", json={"address": "ceo@acme.test"}, headers=admin_key),
    ]
    by_owner = await api.patch(path, json={"visibility": "subject"}, headers=ws.auth)
    disconnected = await api.post(f"{path}/disconnect", headers=admin)

    for refusal in refusals:
        assert refusal.status_code == 403, refusal.text
        assert refusal.json()["type"].endswith("/not-mailbox-owner")
    assert by_owner.status_code == 200, by_owner.text
    assert disconnected.status_code == 200, disconnected.text
    stored = await ws.store.mailboxes.find_one({"_id": mailbox["id"]})
    assert stored is not None
    assert (stored["visibility"], stored["aliases"]) == ("subject", [])
    assert stored["sync"]["backfill_days"] == 14
    assert stored["status"]["state"] == "disconnected"


async def test_a_mailbox_connected_by_an_api_key_is_the_api_keys_to_change(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount
) -> None:
    connecting_key = bearer(await system_key(api, ws, ["read", "write"]))
    other_key = bearer(await system_key(api, ws, ["write"]))
    response = await api.post(
        "/v1/mailboxes", json=mailbox_body(infra, owner), headers=connecting_key
    )
    assert response.status_code == 201, response.text
    path = f"/v1/mailboxes/{response.json()['id']}"

    by_owner_person = await api.patch(path, json={"visibility": "workspace"}, headers=ws.auth)
    by_key = await api.patch(path, json={"visibility": "private"}, headers=other_key)

    assert response.json()["owner_user_id"] is None
    assert by_owner_person.status_code == 403
    assert by_key.status_code == 200, by_key.text
    assert by_key.json()["visibility"] == "private"


async def test_resync_forgets_checkpoints_and_the_lease(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount
) -> None:
    mailbox = await connect(api, ws, infra, owner)
    await ws.store.mailboxes.update_one(
        {"_id": mailbox["id"]},
        {
            "$set": {
                "status.state": "live",
                "lease": {"owner": "ingest-1", "until": "2999-01-01T00:00:00Z"},
                "folders": {
                    "INBOX": {
                        "name": "INBOX",
                        "role": "inbox",
                        "uidvalidity": 7,
                        "last_uid": 40,
                        "total": 40,
                        "done": 40,
                    }
                },
            }
        },
    )
    progress = await api.get(f"/v1/mailboxes/{mailbox['id']}", headers=ws.auth)

    response = await api.post(f"/v1/mailboxes/{mailbox['id']}/resync", headers=ws.auth)

    assert progress.json()["folders"] == [
        {"name": "INBOX", "role": "inbox", "total": 40, "done": 40, "last_uid": 40}
    ]
    assert response.status_code == 202
    assert response.json()["folders"] == []
    assert response.json()["status"]["state"] == "connecting"
    stored = await ws.store.mailboxes.find_one({"_id": mailbox["id"]})
    assert stored is not None
    assert stored["lease"] is None


async def test_status_shows_the_gaps_of_the_last_reconciliation(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount
) -> None:
    mailbox = await connect(api, ws, infra, owner)
    reconciled = datetime(2026, 1, 5, 9, 30, tzinfo=UTC)
    await ws.store.mailboxes.update_one(
        {"_id": mailbox["id"]},
        {
            "$set": {
                "status.state": "live",
                "status.gaps": [{"folder": "INBOX", "server": 12, "logged": 9, "missing": 3}],
                "status.reconciled_at": reconciled,
            }
        },
    )

    response = await api.get(f"/v1/mailboxes/{mailbox['id']}", headers=ws.auth)

    status = response.json()["status"]
    assert status["gaps"] == [{"folder": "INBOX", "server": 12, "logged": 9, "missing": 3}]
    assert datetime.fromisoformat(status["reconciled_at"]) == reconciled


async def test_disconnect_erases_credentials_and_lease_and_keeps_logged_mail(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount
) -> None:
    mailbox = await connect(api, ws, infra, owner)
    await ws.store.mailboxes.update_one(
        {"_id": mailbox["id"]},
        {
            "$set": {
                "lease": {"owner": "ingest-1", "until": "2999-01-01T00:00:00Z"},
                **{
                    f"{server}.{field}": f"a stored secret: {server}.{field}"
                    for server in ("imap", "smtp")
                    for field in SECRET_FIELDS
                },
            }
        },
    )
    logged = MessageDocument(
        workspace_id=ws.id,
        message_id="<kept@client.test>",
        thread_id="t-1",
        mailbox_ids=[mailbox["id"]],
        direction="received",
        raw_id="raw-kept",
    )
    await ws.store.messages.insert_one(logged.to_document())

    response = await api.post(f"/v1/mailboxes/{mailbox['id']}/disconnect", headers=ws.auth)
    resync = await api.post(f"/v1/mailboxes/{mailbox['id']}/resync", headers=ws.auth)

    assert response.status_code == 200
    body = response.json()
    assert body["status"]["state"] == "disconnected"
    assert body["imap"]["has_credentials"] is False
    assert body["smtp"]["has_credentials"] is False
    assert body["disconnected_at"] is not None
    stored = await ws.store.mailboxes.find_one({"_id": mailbox["id"]})
    assert stored is not None
    assert {"secret_encrypted", "client_secret_encrypted"} <= set(SECRET_FIELDS)
    assert "a stored secret" not in str(stored)
    assert stored["lease"] is None
    assert await ws.store.messages.count({"_id": logged.id}) == 1
    assert resync.status_code == 409


async def test_another_workspace_cannot_see_or_touch_a_mailbox(
    api: httpx.AsyncClient,
    ws: ApiWorkspace,
    other_ws: ApiWorkspace,
    infra: Infra,
    owner: MailAccount,
) -> None:
    mailbox = await connect(api, ws, infra, owner)

    for method, path in (
        ("GET", f"/v1/mailboxes/{mailbox['id']}"),
        ("GET", f"/v1/mailboxes/{mailbox['id']}/sync-summary"),
        ("PATCH", f"/v1/mailboxes/{mailbox['id']}"),
        ("POST", f"/v1/mailboxes/{mailbox['id']}/resync"),
        ("POST", f"/v1/mailboxes/{mailbox['id']}/disconnect"),
    ):
        kwargs: dict[str, Any] = {"json": {"display_name": "x"}} if method == "PATCH" else {}
        response = await api.request(method, path, headers=other_ws.auth, **kwargs)
        assert response.status_code == 404, (method, path)
    listed = await api.get("/v1/mailboxes", headers=other_ws.auth)

    assert listed.json() == []
    stored = await ws.store.mailboxes.find_one({"_id": mailbox["id"]})
    assert stored is not None
    assert stored["status"]["state"] == "connecting"
    assert stored["display_name"] == "Olga Owner"


async def test_a_login_proves_only_its_own_address_and_admins_approve_others(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount
) -> None:
    """A member connecting the owner's address with the member's own login gets a mailbox
    that neither syncs nor sends until an admin approves, and the approval is recorded."""
    member = await invite(api, ws, "member")
    member_account = await ready_account(infra, "acme.test", "member")
    admin = await invite(api, ws, "admin")
    claimed = mailbox_body(infra, member_account, address=owner.address)

    response = await api.post("/v1/mailboxes", json=claimed, headers=bearer(member["token"]))
    assert response.status_code == 201, response.text
    mailbox = response.json()
    path = f"/v1/mailboxes/{mailbox['id']}"
    compose = {
        "mailbox_id": mailbox["id"],
        "to": [{"address": "ann@client.test"}],
        "subject": "Hello",
        "body_text": "Hi",
    }
    send = await api.post("/v1/send-requests", json=compose, headers=bearer(member["token"]))
    resync = await api.post(f"{path}/resync", headers=bearer(member["token"]))
    self_approval = await api.post(f"{path}/approve-address", headers=bearer(member["token"]))
    summary = await api.get(f"{path}/sync-summary", headers=ws.auth)

    assert (mailbox["status"]["state"], mailbox["address_proof"]) == ("awaiting_approval", None)
    assert send.status_code == 409, send.text
    assert resync.status_code == 409, resync.text
    assert self_approval.status_code == 403, self_approval.text
    assert summary.json()["what_is_synced"].startswith("Nothing yet")
    assert await ws.store.send_requests.count({}) == 0

    approved = await api.post(f"{path}/approve-address", headers=bearer(admin["token"]))

    assert approved.status_code == 200, approved.text
    assert approved.json()["status"]["state"] == "connecting"
    proof = approved.json()["address_proof"]
    assert (proof["method"], proof["by"]) == ("admin", f"user:{admin['id']}")
    assert datetime.fromisoformat(proof["at"]) <= datetime.now(UTC)


async def test_an_address_in_use_is_refused_to_anyone_else_without_saying_whose(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount
) -> None:
    connected = await connect(api, ws, infra, owner)
    member = await invite(api, ws, "member")
    member_account = await ready_account(infra, "acme.test", "member")
    as_member = bearer(member["token"])

    claimed = await api.post(
        "/v1/mailboxes",
        json=mailbox_body(infra, member_account, address=owner.address),
        headers=as_member,
    )
    own = await api.post(
        "/v1/mailboxes", json=mailbox_body(infra, member_account), headers=as_member
    )
    alias = await api.post(
        f"/v1/mailboxes/{own.json()['id']}/aliases",
        json={"address": owner.address},
        headers=as_member,
    )

    assert connected["address_proof"]["method"] == "login"
    for refusal in (claimed, alias):
        assert refusal.status_code == 409, refusal.text
        assert ws.owner_user_id not in refusal.text
        assert connected["id"] not in refusal.text
        assert "Olga" not in refusal.text
    assert own.status_code == 201, own.text
    assert await ws.store.mailboxes.count({"address": owner.address}) == 1


async def test_a_verified_alias_records_who_verified_it_and_is_nobody_elses_to_claim(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, owner: MailAccount
) -> None:
    mailbox = await connect(api, ws, infra, owner)
    admin = await invite(api, ws, "admin")
    member = await invite(api, ws, "member")
    member_account = await ready_account(infra, "acme.test", "member")
    added = await api.post(
        f"/v1/mailboxes/{mailbox['id']}/aliases",
        json={"address": "sales@acme.test"},
        headers=ws.auth,
    )
    assert added.status_code == 201, added.text

    verified = await api.post(
        f"/v1/mailboxes/{mailbox['id']}/aliases/sales@acme.test/verify",
        headers=bearer(admin["token"]),
    )
    claimed = await api.post(
        "/v1/mailboxes",
        json=mailbox_body(infra, member_account, address="sales@acme.test"),
        headers=bearer(member["token"]),
    )

    assert verified.status_code == 200, verified.text
    (alias,) = verified.json()["aliases"]
    assert (alias["verified"], alias["verified_by"]) == (True, f"user:{admin['id']}")
    assert claimed.status_code == 409, claimed.text


async def test_an_admin_stops_and_erases_a_members_mailbox_and_a_key_needs_the_admin_scope(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra
) -> None:
    member = await invite(api, ws, "member")
    account = await ready_account(infra, "acme.test", "member")
    created = await api.post(
        "/v1/mailboxes", json=mailbox_body(infra, account), headers=bearer(member["token"])
    )
    assert created.status_code == 201, created.text
    path = f"/v1/mailboxes/{created.json()['id']}"
    admin = bearer((await invite(api, ws, "admin"))["token"])
    write_key = bearer(await system_key(api, ws, ["read", "write"]))
    admin_key = bearer(await system_key(api, ws, ["admin"]))
    erase = {"confirm": account.address}

    by_write_key = await api.post(f"{path}/disconnect", headers=write_key)
    disconnected = await api.post(f"{path}/disconnect", headers=admin)
    erase_by_write_key = await api.delete(f"{path}/synced-data", params=erase, headers=write_key)
    erase_by_member = await api.delete(
        f"{path}/synced-data", params=erase, headers=bearer(member["token"])
    )
    erased = await api.delete(f"{path}/synced-data", params=erase, headers=admin_key)
    widened = await api.patch(path, json={"visibility": "workspace"}, headers=admin)

    assert by_write_key.status_code == 403, "a key's write scope makes it no owner or admin"
    assert disconnected.status_code == 200, disconnected.text
    assert (erase_by_write_key.status_code, erase_by_member.status_code) == (403, 403)
    assert erased.status_code == 200, erased.text
    assert widened.status_code == 403
