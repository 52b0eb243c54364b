"""Fixtures for the api's integration tests: the app on the real broker and database.

Imported by the `test_api_*` modules (not a conftest.py, so other suites stay unaffected);
the fixture functions carry a `_fixture` suffix and register under the short name.
The api gets its own database so other suites' session fixtures cannot drop it mid-run.
"""

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_api.app import create_app
from mailsync_api.route_table import api_routes as app_routes
from mailsync_api.settings import Settings
from mailsync_associate.logbook import log_message
from mailsync_associate.repository import AssociateRepository
from mailsync_shared.contracts.mail import Address, MailMessage
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import (
    MailboxDocument,
    MessageDocument,
    ServerAccount,
    ThreadDocument,
)
from mailsync_shared.storage.raw_messages import store_raw
from mailsync_shared.storage.scoped import WorkspaceStore
from tests.support.infra import Infra, mongo_client
from tests.support.mail import MailAccount, create_account

# Each session writes its own database, dropped by each module at its end: a database that
# grew over many runs would slow every query not by `_id` on FerretDB.
API_DATABASE = f"mailsync_test_api_{uuid.uuid4().hex[:8]}"


def api_settings(infra: Infra, secret_key: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "rabbitmq_url": infra.rabbitmq_url,
        "mongodb_url": infra.mongodb_url,
        "mongodb_database": API_DATABASE,
        "secret_key": SecretStr(secret_key),
        "allow_private_hosts": True,
        "mail_server_timeout": 10.0,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module", name="api_db")
async def api_db_fixture(infra: Infra) -> AsyncIterator[AsyncDatabase[Document]]:
    client = await mongo_client(infra)
    yield client[API_DATABASE]
    await client.drop_database(API_DATABASE)
    await client.close()


async def running_api(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
            yield client


@pytest.fixture(scope="module", name="api")
async def api_fixture(
    infra: Infra, secret_key: str, api_db: AsyncDatabase[Document]
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on the api app, with its lifespan (broker, topology, indexes) running."""
    async for client in running_api(api_settings(infra, secret_key)):
        yield client


@dataclass(frozen=True)
class ApiWorkspace:
    id: str
    api_key: str
    store: WorkspaceStore
    owner_user_id: str = ""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def create_workspace(
    api: httpx.AsyncClient, db: AsyncDatabase[Document], name: str = "Acme"
) -> ApiWorkspace:
    response = await api.post("/v1/workspaces", json={"name": name, "domains": ["acme.test"]})
    assert response.status_code == 201, response.text
    body = response.json()
    return ApiWorkspace(
        id=body["id"],
        api_key=body["api_key"],
        store=WorkspaceStore(db, body["id"]),
        owner_user_id=body["owner_user_id"],
    )


@pytest.fixture(name="ws")
async def ws_fixture(api: httpx.AsyncClient, api_db: AsyncDatabase[Document]) -> ApiWorkspace:
    return await create_workspace(api, api_db, "Acme")


@pytest.fixture(name="other_ws")
async def other_ws_fixture(api: httpx.AsyncClient, api_db: AsyncDatabase[Document]) -> ApiWorkspace:
    return await create_workspace(api, api_db, "Other Inc")


async def ready_account(infra: Infra, domain: str, local: str) -> MailAccount:
    """A fresh Dovecot account that already accepts its login."""
    return await asyncio.to_thread(create_account, infra, domain, local)


async def invite(
    api: httpx.AsyncClient, ws: ApiWorkspace, role: str, email: str | None = None
) -> dict[str, str]:
    """A person of `ws` with `role`; returns their user id and personal token."""
    response = await api.post(
        "/v1/users",
        json={"email": email or f"{role}-{uuid.uuid4().hex[:8]}@acme.test", "role": role},
        headers=ws.auth,
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return {"id": body["id"], "token": body["token"]}


async def system_key(api: httpx.AsyncClient, ws: ApiWorkspace, scopes: list[str]) -> str:
    response = await api.post(
        "/v1/api-keys",
        json={"name": "system " + ",".join(scopes), "scopes": scopes},
        headers=ws.auth,
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def api_routes(settings: Settings) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves through FastAPI, enumerated from its routes."""
    routes = app_routes(create_app(settings))
    assert len(routes) > 20, "route enumeration found too few routes"
    return routes


def mailbox_document(ws_id: str, address: str, **fields: Any) -> MailboxDocument:
    """A mailbox stored directly, for tests that need one without a mail server."""
    account = ServerAccount(host="127.0.0.1", port=1, username=address, secret_encrypted=None)
    return MailboxDocument(
        workspace_id=ws_id, address=address, imap=account, smtp=account, **fields
    )


async def owned_mailbox(
    ws: ApiWorkspace, address: str = "owner@acme.test", **fields: Any
) -> MailboxDocument:
    """A stored mailbox of the person whose token `ws.auth` carries (the workspace's owner)."""
    mailbox = mailbox_document(ws.id, address, **{"owner_user_id": ws.owner_user_id, **fields})
    await ws.store.mailboxes.insert_one(mailbox.to_document())
    return mailbox


async def insert_mail(
    ws: ApiWorkspace,
    mailbox_ids: list[str],
    *,
    subject: str,
    at: datetime,
    participants: tuple[str, str] = ("owner@acme.test", "ann@client.test"),
    contact_ids: list[str] | None = None,
    private: bool = False,
    body: str = "the body",
) -> ThreadDocument:
    """A thread with one received message, seen in `mailbox_ids`."""
    owner, client = participants
    thread = ThreadDocument(
        workspace_id=ws.id,
        subject=subject,
        participants=[owner, client],
        mailbox_ids=mailbox_ids,
        contact_ids=contact_ids or [],
        private=private,
        first_message_at=at,
        last_message_at=at,
        message_count=1,
    )
    message = MessageDocument(
        workspace_id=ws.id,
        message_id=f"<{thread.id}@client.test>",
        thread_id=thread.id,
        mailbox_ids=mailbox_ids,
        direction="received",
        from_=Address(address=client, name="Ann"),
        to=[Address(address=owner)],
        subject=subject,
        date=at,
        body_text=body,
        raw_id=f"raw-{thread.id}",
    )
    thread.message_ids = [message.message_id]
    await ws.store.threads.insert_one(thread.to_document())
    await ws.store.messages.insert_one(message.to_document())
    await ws.store.raw_messages.insert_one({"_id": message.raw_id, "size": 1, "data": b"x"})
    return thread


async def log_email(
    ws: ApiWorkspace,
    mailbox_id: str,
    email: EmailMessage,
    direction: str = "received",
    owner: str = "owner@acme.test",
) -> None:
    """Log `email` in `owner`'s mailbox as associate does after ingest and capture."""
    raw = email.as_bytes()

    def addresses(header: str) -> list[dict[str, str]]:
        value = email.get(header)
        if not value:
            return []
        return [{"address": a.addr_spec.lower(), "name": a.display_name} for a in value.addresses]

    message = MailMessage.model_validate(
        {
            "mailbox_id": mailbox_id,
            "owner_address": owner,
            "direction": direction,
            "raw_id": await store_raw(ws.store, raw),
            "size": len(raw),
            "message_id": email["Message-ID"],
            "in_reply_to": str(email.get("In-Reply-To", "")).split(),
            "subject": email["Subject"],
            "date": email["Date"].datetime,
            "from": addresses("From")[0],
            "to": addresses("To"),
        }
    )
    await log_message(AssociateRepository(ws.store), message)
