"""Associate killed (SIGKILL) or stopped (SIGTERM) mid-stream and started again: every
message logged once. Stopped, it first finishes the deliveries it holds, without errors."""

import asyncio
import signal
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailsync_devtools.stack import (
    RunningService,
    Service,
    start_service,
    stop_services,
    wait_ready,
)
from mailsync_shared.contracts.mail import MailMessage
from tests.integration.conftest_capture import (  # noqa: F401  (fixtures register by name)
    ServiceWorkspace,
    ws_fixture,
)
from tests.support.captured_mail import OWNER, captured, stored_mail
from tests.support.mail import build_message

pytestmark = pytest.mark.integration

LOGGED = "mailsync.email.logged.v1"
THREADS = 150
PER_THREAD = 4


@contextmanager
def associate_process(
    service_env: dict[str, str], log_dir: Path, port: int
) -> Iterator[RunningService]:
    """`python -m mailsync_associate` in small batches, so a kill lands between them."""
    env = {**service_env, "MAILSYNC_BATCH_SIZE": "25", "MAILSYNC_PREFETCH": "10"}
    running = start_service(Service("associate", port), env, log_dir)
    try:
        wait_ready([running], timeout=90)
        yield running
    finally:
        stop_services([running])


async def conversations(ws: ServiceWorkspace) -> list[MailMessage]:
    """`THREADS` conversations of `PER_THREAD` messages, each a reply to the one before."""
    started = datetime.now(UTC) - timedelta(days=1)
    messages: list[MailMessage] = []
    for thread in range(THREADS):
        previous: list[str] = []
        for turn in range(PER_THREAD):
            email = build_message(
                sender="ann@client.test" if turn % 2 else OWNER,
                to=[OWNER if turn % 2 else "ann@client.test"],
                subject=f"{'Re: ' if turn else ''}Topic {thread}",
                body=f"turn {turn} of {thread}",
                in_reply_to=previous[-1] if previous else None,
                references=previous or None,
                date=started + timedelta(minutes=thread * PER_THREAD + turn),
            )
            previous.append(email["Message-ID"])
            uid = thread * PER_THREAD + turn + 1
            messages.append(await stored_mail(ws.store, email, uid=uid))
    return messages


@pytest.mark.parametrize("stop", ["SIGKILL", "SIGTERM"])
async def test_associate_stopped_mid_stream_logs_every_message_once_after_restart(
    stop: str,
    ws: ServiceWorkspace,
    service_env: dict[str, str],
    tmp_path: Path,
    unused_tcp_port: int,
) -> None:
    messages = await conversations(ws)
    for message in messages:
        await ws.publish(captured(ws.id, message))

    def logged_ids() -> set[str]:
        return {event["data"]["message_id"] for event in ws.events.events(LOGGED)}

    with associate_process(service_env, tmp_path, unused_tcp_port) as first:
        await ws.events.wait_for(lambda e: len(logged_ids()) >= 40, "some messages logged")
        if stop == "SIGKILL":
            first.process.kill()
            first.process.wait()
        else:
            first.process.terminate()
            # uvicorn ends a graceful shutdown by raising the signal it caught again.
            assert first.process.wait(timeout=30) in (0, -signal.SIGTERM)
            errors = [line for line in first.log_path.read_text().splitlines() if "ERROR" in line]
            assert errors == [], "deliveries in progress finish before the database closes"
    assert len(logged_ids()) < len(messages), "the stop must land mid-stream"

    with associate_process(service_env, tmp_path, unused_tcp_port):
        await ws.events.wait_for(
            lambda e: len(logged_ids()) == len(messages), "every message logged", within=120
        )
        await asyncio.sleep(1)  # a late duplicate would arrive now
        await ws.events.drain()

    assert logged_ids() == {message.message_id for message in messages}
    events = ws.events.events(LOGGED)
    ids_per_message: dict[str, set[str]] = {}
    for event in events:
        ids_per_message.setdefault(event["data"]["message_id"], set()).add(event["id"])
    assert all(len(ids) == 1 for ids in ids_per_message.values()), "a repeat keeps its event id"

    stored = await ws.store.messages.find({}, projection={"message_id": 1, "thread_id": 1})
    assert len(stored) == len(messages)
    assert len({doc["message_id"] for doc in stored}) == len(messages)
    per_thread = Counter(doc["thread_id"] for doc in stored)
    assert sorted(per_thread.values()) == [PER_THREAD] * THREADS
    threads = await ws.store.threads.find({}, projection={"message_count": 1})
    assert sorted(t["message_count"] for t in threads) == [PER_THREAD] * THREADS
    assert await ws.store.announced_messages.count({}) == len(messages)
