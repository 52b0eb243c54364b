"""A backfill through all five services survives capture and associate killed with SIGKILL.

capture runs as two replicas and associate as three, sharing the work by leased shards. One
replica of each is killed mid-stream and started again, and a second associate replica is
killed for good (its shards move to the others); every message of the mailbox ends up logged
once, on its own thread, and the mailbox reaches `live`.
"""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_devtools.stack import (
    RunningService,
    Service,
    free_ports,
    start_service,
    stop_services,
    wait_ready,
)
from mailsync_shared.storage.client import Document
from tests.support.infra import Infra
from tests.support.mail import create_account, fill_inbox, mailbox_connection
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

MESSAGES = 1_500
CLIENT = "ann@client.test"
KILLED = ("capture", "associate")
# Replicas beside the stack's own: (service, log folder); the first is killed for good.
EXTRA_REPLICAS = (
    ("associate", "associate-2"),
    ("associate", "associate-3"),
    ("capture", "capture-2"),
)


@pytest.fixture
def extras(
    stack: list[RunningService], service_env: dict[str, str], log_dir: Path
) -> Iterator[list[RunningService]]:
    """More replicas of capture and associate beside the stack's."""
    ports = list(free_ports(tuple(Service(folder, 0) for _, folder in EXTRA_REPLICAS)).values())
    started: list[RunningService] = []
    try:
        for (name, folder), port in zip(EXTRA_REPLICAS, ports, strict=True):
            started.append(start_service(Service(name, port), service_env, log_dir / folder, port))
        wait_ready(started, timeout=90)
        yield started
    finally:
        stop_services(started)


async def test_capture_and_associate_killed_mid_backfill_lose_and_double_nothing(
    stack: list[RunningService],
    extras: list[RunningService],
    api_url: str,
    log_dir: Path,
    service_env: dict[str, str],
    infra: Infra,
    mongo: AsyncDatabase[Document],
) -> None:
    owner = create_account(infra, "acme.test", "owner")
    sent_ids = fill_inbox(infra, owner, MESSAGES, CLIENT)
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as api:
        workspace = (await api.post("/v1/workspaces", json={"name": "Crash"})).json()
        api.headers["Authorization"] = f"Bearer {workspace['api_key']}"
        await api.post("/v1/contacts", json={"name": "Ann", "emails": [CLIENT]})
        connected = await api.post(
            "/v1/mailboxes", json=mailbox_connection(infra, owner, sync={"backfill_days": 30})
        )
        assert connected.status_code == 201, connected.text
        mailbox_id = connected.json()["id"]
        messages = mongo["messages"]
        scope = {"workspace_id": workspace["id"]}

        async def some_logged() -> bool:
            return await messages.count_documents(scope) >= 200

        await eventually(some_logged, what="the first messages logged", timeout=120)
        restarted: list[RunningService] = []
        try:
            for item in [*stack, extras[0]]:
                if item.service.name in KILLED:
                    item.process.kill()
                    item.process.wait()
            logged_at_kill = await messages.count_documents(scope)
            assert logged_at_kill < MESSAGES, "the kill must land mid-backfill"
            for item in stack:
                if item.service.name in KILLED:
                    restarted.append(start_service(item.service, service_env, log_dir, item.port))
            wait_ready(restarted, timeout=90)

            async def all_logged() -> bool:
                return await messages.count_documents(scope) >= MESSAGES

            await eventually(all_logged, what="every message logged", timeout=300)

            async def live() -> bool:
                mailbox = (await api.get(f"/v1/mailboxes/{mailbox_id}")).json()
                return bool(mailbox["status"]["state"] == "live")

            await eventually(live, what="the mailbox live", timeout=60)
        finally:
            stop_services(restarted)

    stored = await messages.find(scope, {"message_id": 1, "thread_id": 1}).to_list()
    assert sorted(doc["message_id"] for doc in stored) == sorted(sent_ids)
    assert len({doc["thread_id"] for doc in stored}) == MESSAGES, "one thread per conversation"
    threads = await mongo["threads"].find(scope, {"message_count": 1}).to_list()
    assert [thread["message_count"] for thread in threads] == [1] * MESSAGES
