"""A property-based run of the OpenAPI document: whatever a client sends, no server error.

The app runs in-process under uvicorn on the real broker and database; schemathesis
generates requests for every operation from the document the app serves.
"""

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from pydantic import SecretStr
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation

from mailsync_api.app import create_app
from mailsync_api.settings import Settings
from tests.integration.conftest_api import api_settings
from tests.support.infra import Infra
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

EXAMPLES_PER_OPERATION = 20


@pytest.fixture(scope="module")
def live_api(infra: Infra, secret_key: str) -> Iterator[str]:
    """The api served over HTTP from a thread; private hosts refused, so no login is tried."""
    app = create_app(api_settings(infra, secret_key, allow_private_hosts=False))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="api-under-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the api did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=15)


@pytest.fixture(scope="module")
def owner_auth(live_api: str) -> dict[str, str]:
    response = httpx.post(f"{live_api}/v1/workspaces", json={"name": "Fuzz"}, timeout=30)
    assert response.status_code == 201, response.text
    return {"Authorization": f"Bearer {response.json()['api_key']}"}


Operation = APIOperation[Any, Any, Any, Any]


def _operations() -> list[Operation]:
    """The operations of the document the app serves; building the app opens no connection."""
    config = Settings(secret_key=SecretStr(Fernet.generate_key().decode()))
    document = schemathesis.openapi.from_dict(create_app(config).openapi())
    operations = []
    for result in document.get_all_operations():
        assert isinstance(result, Ok), f"the OpenAPI document is invalid: {result}"
        operations.append(result.ok())
    return operations


@pytest.mark.parametrize("operation", _operations(), ids=lambda operation: operation.label)
def test_no_request_gets_a_server_error(
    operation: Operation, live_api: str, owner_auth: dict[str, str]
) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def call(case: schemathesis.Case[Any]) -> None:
        response = case.call(base_url=live_api, headers=owner_auth, timeout=30)

        assert response.status_code < 500, (
            f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
        )
        if response.status_code >= 400:
            content_type = response.headers.get("content-type", [""])[0]
            assert content_type.startswith("application/problem+json"), (
                f"{case.method} {case.formatted_path}: {response.status_code} without a problem"
            )

    call()
