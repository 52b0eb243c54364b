"""A mailbox the api makes claimable is leased at once, not at the workers' next periodic claim.

The workers here claim every `SLOW_CLAIMS` seconds, far beyond every deadline below: a mailbox
leased within `PROMPT` seconds was found through the api's wake (`MailboxClaimable`)."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument, ServerAccount
from mailsync_shared.storage.scoped import WorkspaceStore
from tests.integration.conftest_api import (  # noqa: F401  (fixtures register by name)
    API_DATABASE,
    ApiWorkspace,
    api_db_fixture,
    api_fixture,
    bearer,
    invite,
    other_ws_fixture,
    ready_account,
    ws_fixture,
)
from tests.integration.conftest_ingest import fetched_spy, running_worker, worker_settings
from tests.support.infra import Infra
from tests.support.mail import MailAccount, fill_inbox
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

SLOW_CLAIMS = 60.0
PROMPT = 10.0
SENDER = "erin@client.test"


def mailbox_body(infra: Infra, account: MailAccount, **overrides: Any) -> dict[str, Any]:
    server = {"username": account.address, "password": account.password, "security": "none"}
    return {
        "address": account.address,
        "imap": {**server, "host": infra.imap_host, "port": infra.imap_port},
        "smtp": {**server, "host": infra.smtp_host, "port": infra.smtp_port},
        "sync": {"scope": "all", "backfill_days": 14},
        **overrides,
    }


async def connect(
    api: httpx.AsyncClient, ws: ApiWorkspace, infra: Infra, account: MailAccount
) -> str:
    response = await api.post("/v1/mailboxes", json=mailbox_body(infra, account), headers=ws.auth)
    assert response.status_code == 201, response.text
    mailbox_id: str = response.json()["id"]
    return mailbox_id


async def leased_by(store: WorkspaceStore, mailbox_id: str, worker_id: str) -> bool:
    document = await store.mailboxes.find_one({"_id": mailbox_id})
    assert document is not None
    return (document.get("lease") or {}).get("owner") == worker_id


@asynccontextmanager
async def pool_worker(
    infra: Infra,
    secret_key: str,
    api_db: AsyncDatabase[Document],
    workspace_id: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[str, list[str]]]:
    """A worker leasing `workspace_id`'s mailboxes that claims only every `SLOW_CLAIMS`
    seconds: its id, and the workspaces of the wakes it receives, once its first claim is done
    (it leased a mailbox stored before it started)."""
    settings = worker_settings(
        infra,
        secret_key,
        workspace_id,
        mongodb_database=API_DATABASE,
        claim_interval_seconds=SLOW_CLAIMS,
    )
    account = await ready_account(infra, "acme.test", "first")
    server = ServerAccount(
        host=infra.imap_host,
        port=infra.imap_port,
        security="none",
        username=account.address,
        secret_encrypted=CredentialCipher(settings.secret_key).encrypt(account.password),
    )
    first = MailboxDocument(
        workspace_id=workspace_id, address=account.address, imap=server, smtp=server
    )
    store = WorkspaceStore(api_db, workspace_id)
    await store.mailboxes.insert_one(first.to_document())
    async with running_worker(settings, api_db) as worker:
        woken: list[str] = []
        wake = worker.wake

        def recorded(workspace: str, mailbox_id: str, *, added: bool) -> None:
            woken.append(workspace)
            wake(workspace, mailbox_id, added=added)

        monkeypatch.setattr(worker, "wake", recorded)

        async def first_claimed() -> bool:
            return await leased_by(store, first.id, settings.worker_id)

        await eventually(first_claimed, timeout=PROMPT, what="the worker's first claim")
        yield settings.worker_id, woken


async def test_a_connected_mailbox_is_leased_and_synced_at_once_by_its_pool_only(
    api: httpx.AsyncClient,
    api_db: AsyncDatabase[Document],
    ws: ApiWorkspace,
    other_ws: ApiWorkspace,
    infra: Infra,
    secret_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner = await ready_account(infra, "acme.test", "owner")
    sent_ids = await asyncio.to_thread(fill_inbox, infra, owner, 3, SENDER)
    async with (
        pool_worker(infra, secret_key, api_db, ws.id, monkeypatch) as (ours, ours_woken),
        pool_worker(infra, secret_key, api_db, other_ws.id, monkeypatch) as (other, other_woken),
        fetched_spy(infra, ws.id) as spy,
    ):
        mailbox_id = await connect(api, ws, infra, owner)

        async def leased() -> bool:
            return await leased_by(ws.store, mailbox_id, ours)

        async def synced() -> bool:
            return set(sent_ids) <= set(spy.message_ids())

        await eventually(leased, timeout=PROMPT, what="the lease of the connected mailbox")
        await eventually(synced, timeout=PROMPT, what="its mail published")
        other_id = await connect(
            api, other_ws, infra, await ready_account(infra, "other.test", "other")
        )

        async def leased_by_other_pool() -> bool:
            return await leased_by(other_ws.store, other_id, other)

        await eventually(leased_by_other_pool, timeout=PROMPT, what="the other pool's lease")

    assert ours_woken == [ws.id]
    assert other_woken == [other_ws.id], "a worker was woken for another pool's workspace"


async def test_a_resync_and_an_approval_are_taken_up_at_once(
    api: httpx.AsyncClient,
    api_db: AsyncDatabase[Document],
    ws: ApiWorkspace,
    infra: Infra,
    secret_key: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    owner = await ready_account(infra, "acme.test", "owner")
    sent_ids = await asyncio.to_thread(fill_inbox, infra, owner, 2, SENDER)
    member = await invite(api, ws, "member")
    admin = await invite(api, ws, "admin")
    member_account = await ready_account(infra, "acme.test", "member")
    claimed = mailbox_body(infra, member_account, address=f"shared-{owner.address}")
    async with (
        pool_worker(infra, secret_key, api_db, ws.id, monkeypatch) as (worker, woken),
        fetched_spy(infra, ws.id) as spy,
    ):
        mailbox_id = await connect(api, ws, infra, owner)

        async def published_twice() -> bool:
            return all(spy.message_ids().count(m) >= 2 for m in sent_ids)

        async def published_once() -> bool:
            return set(sent_ids) <= set(spy.message_ids())

        await eventually(published_once, timeout=PROMPT, what="the first sync")
        resync = await api.post(f"/v1/mailboxes/{mailbox_id}/resync", headers=ws.auth)
        assert resync.status_code == 202, resync.text
        await eventually(published_twice, timeout=PROMPT, what="the mail synced again")

        awaiting = await api.post("/v1/mailboxes", json=claimed, headers=bearer(member["token"]))
        assert awaiting.status_code == 201, awaiting.text
        assert awaiting.json()["status"]["state"] == "awaiting_approval"
        awaiting_id = awaiting.json()["id"]
        approved = await api.post(
            f"/v1/mailboxes/{awaiting_id}/approve-address", headers=bearer(admin["token"])
        )
        assert approved.status_code == 200, approved.text

        async def approved_leased() -> bool:
            return await leased_by(ws.store, awaiting_id, worker)

        await eventually(approved_leased, timeout=PROMPT, what="the approved mailbox leased")

    assert woken == [ws.id] * 3, "connect, resync and approval each wake; awaiting does not"
