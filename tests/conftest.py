"""Fixtures shared by the integration and end-to-end suites."""

import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from typing import Any

import pytest
from cryptography.fernet import Fernet
from faststream.rabbit import RabbitBroker
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.storage.client import Document
from mailsync_shared.storage.indexes import ensure_indexes
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.topology import declare_topology
from tests.support.infra import (
    Infra,
    delete_vhost,
    infra_from_env,
    isolated_vhost_url,
    mongo_client,
    require_port,
)

# One database per test session, so concurrent sessions on one machine never share data.
TEST_DATABASE = f"mailsync_test_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """The local services, with a RabbitMQ vhost of this session's own."""
    base = infra_from_env()
    vhost = f"mailsync-test-{uuid.uuid4().hex[:8]}"
    yield replace(base, rabbitmq_url=isolated_vhost_url(base.rabbitmq_url, vhost))
    delete_vhost(base.rabbitmq_url, vhost)


@pytest.fixture(scope="session")
def secret_key() -> str:
    return Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def service_env(infra: Infra, secret_key: str) -> dict[str, str]:
    """Environment for a service process under test."""
    return {
        "MAILSYNC_RABBITMQ_URL": infra.rabbitmq_url,
        "MAILSYNC_MONGODB_URL": infra.mongodb_url,
        "MAILSYNC_MONGODB_DATABASE": TEST_DATABASE,
        "MAILSYNC_SECRET_KEY": secret_key,
        "MAILSYNC_ALLOW_PRIVATE_HOSTS": "true",
    }


@pytest.fixture(scope="session")
async def mongo(infra: Infra) -> AsyncIterator[AsyncDatabase[Document]]:
    client = await mongo_client(infra)
    await client.drop_database(TEST_DATABASE)
    db = client[TEST_DATABASE]
    await ensure_indexes(db)
    yield db
    await client.drop_database(TEST_DATABASE)
    await client.close()


@pytest.fixture
def workspace_id() -> str:
    return f"ws{uuid.uuid4().hex}"


@pytest.fixture
def store(mongo: AsyncDatabase[Document], workspace_id: str) -> WorkspaceStore:
    return WorkspaceStore(mongo, workspace_id)


@pytest.fixture(scope="session")
async def broker(infra: Infra) -> AsyncIterator[RabbitBroker]:
    """A connected broker with the project's topology declared."""
    host_port = infra.rabbitmq_url.split("@")[-1].split("/")[0]
    host, _, port = host_port.partition(":")
    require_port("RabbitMQ", host, int(port or 5672))
    rabbit = RabbitBroker(infra.rabbitmq_url)
    await rabbit.connect()
    await declare_topology(rabbit)
    yield rabbit
    await rabbit.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the test item, so fixtures can react to a failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
