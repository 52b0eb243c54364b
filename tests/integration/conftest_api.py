"""Fixtures for the api's integration tests: the app on the real broker and database.

Imported by the `test_api_*` modules (not a conftest.py, so other suites stay unaffected);
the fixture functions carry a `_fixture` suffix and register under the short name.
The api gets its own database so other suites' session fixtures cannot drop it mid-run.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from pydantic import SecretStr
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_api.app import create_app
from mailsync_api.settings import Settings
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import WorkspaceStore
from tests.support.infra import Infra
from tests.support.mail import MailAccount, create_account

API_DATABASE = "mailsync_test_api"


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
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        infra.mongodb_url, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    try:
        await client.admin.command("ping")
    except Exception as error:
        pytest.fail(f"MongoDB-wire server not reachable at {infra.mongodb_url}: {error}")
    yield client[API_DATABASE]
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
        id=body["id"], api_key=body["api_key"], store=WorkspaceStore(db, body["id"])
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
