"""Fixtures every test in this folder uses."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from faststream.rabbit import RabbitBroker
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_devtools.stack import RunningService, free_ports, running_stack
from mailsync_shared.storage.client import Document

LOGS = Path(__file__).resolve().parents[2] / ".infra" / "logs"


@pytest.fixture(autouse=True)
def declared_topology(broker: RabbitBroker) -> None:
    """The session's vhost holds the project's exchanges and queues before any test runs."""


@pytest.fixture(scope="module")
def log_dir(request: pytest.FixtureRequest) -> Path:
    """Where the module's services write their logs, emptied first and kept after the run:
    `.infra/logs/e2e-<module name without test_>`."""
    name = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    path = LOGS / f"e2e-{name}"
    shutil.rmtree(path, ignore_errors=True)
    return path


@pytest.fixture(scope="module")
def stack(
    service_env: dict[str, str], mongo: AsyncDatabase[Document], log_dir: Path
) -> Iterator[list[RunningService]]:
    """The five services as processes, one stack per test module."""
    with running_stack(service_env, log_dir, ports=free_ports()) as running:
        yield running


@pytest.fixture(scope="module")
def api_url(stack: list[RunningService]) -> str:
    return next(item.url for item in stack if item.service.name == "api")
