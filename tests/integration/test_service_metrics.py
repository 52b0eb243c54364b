"""A worker's /metrics counts, per queue, what it consumed, acknowledged and dead-lettered."""

import json

import httpx
import pytest
from faststream.rabbit import RabbitBroker
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_capture.app import create_app as create_capture_app
from mailsync_capture.settings import Settings as CaptureSettings
from mailsync_shared.contracts.mail import MailMessage, MessageFetched
from mailsync_shared.ids import new_id
from mailsync_shared.storage.client import Document
from mailsync_shared.topology import CAPTURE_SHARDS
from tests.integration.conftest_capture import publish_raw, running, settings_from
from tests.support.metrics import sample
from tests.support.polling import eventually

pytestmark = pytest.mark.integration

QUEUE = CAPTURE_SHARDS.exchange.name  # the label of capture's shard queues


async def test_capture_counts_acked_and_dead_lettered_deliveries_by_queue(
    service_env: dict[str, str], mongo: AsyncDatabase[Document], broker: RabbitBroker
) -> None:
    workspace_id = new_id()
    valid = MessageFetched.create(
        source="/tests",
        workspace_id=workspace_id,
        subject="m1",
        data=MailMessage(
            mailbox_id="mb1",
            owner_address="owner@acme.test",
            direction="received",
            raw_id="raw1",
            size=10,
            message_id="<m1@client.test>",
        ),
    )
    invalid = valid.model_dump(mode="json", by_alias=True)
    del invalid["data"]["message_id"]
    # Counts start from empty queues: earlier suites of the session publish to them too.
    for shard in CAPTURE_SHARDS.shards:
        await (await broker.declare_queue(shard.queue)).purge()
    app = create_capture_app(settings_from(service_env, CaptureSettings))
    async with running(app):
        await publish_raw(broker, valid.model_dump_json(by_alias=True).encode(), valid)
        await publish_raw(broker, json.dumps(invalid).encode(), valid, message_id=new_id())
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://capture") as client:

            async def scraped() -> str | None:
                text = (await client.get("/metrics")).text
                dead = sample(text, "mailsync_dead_lettered_messages_total", queue=QUEUE)
                acked = sample(
                    text,
                    "mailsync_received_processed_messages_total",
                    handler=QUEUE,
                    status="acked",
                )
                return text if dead >= 1 and acked >= 2 else None  # handled concurrently

            text = await eventually(scraped, timeout=60, what="both deliveries counted")

    assert sample(text, "mailsync_dead_lettered_messages_total", queue=QUEUE) == 1
    assert sample(text, "mailsync_received_messages_total", handler=QUEUE) == 2
    assert (
        sample(text, "mailsync_received_processed_messages_total", handler=QUEUE, status="acked")
        == 2
    )
    assert (
        sample(text, "mailsync_received_processed_messages_duration_seconds_count", handler=QUEUE)
        == 2
    )
