"""A real Prometheus scrapes the five services while one conversation runs through them, and
the figures are read back through Prometheus' HTTP API."""

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mailsync_devtools.stack import RunningService
from tests.support.infra import Infra
from tests.support.mail import build_message, create_account, deliver, mailbox_connection
from tests.support.polling import eventually
from tests.support.ports import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prometheus(
    stack: list[RunningService], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Debian's Prometheus scraping every service each second, with the shipped rules."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: `bash deploy/infra.sh start` installs it")
    folder = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(REPO / "deploy" / "prometheus" / "rules.yml")],
        "scrape_configs": [
            {
                "job_name": f"mailsync-{item.service.name}",
                "static_configs": [{"targets": [f"127.0.0.1:{item.port}"]}],
            }
            for item in stack
        ],
    }
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    with (folder / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(15)


async def query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=prometheus, timeout=10) as client:
        response = await client.get("/api/v1/query", params={"query": promql})
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


async def at_least(prometheus: str, promql: str, minimum: float) -> float:
    """Wait until the query's single value reaches `minimum`; return it."""

    async def probe() -> float | None:
        try:
            result = await query(prometheus, promql)
        except httpx.HTTPError:
            return None
        if len(result) == 1 and float(result[0]["value"][1]) >= minimum:
            return float(result[0]["value"][1])
        return None

    value: float = await eventually(probe, timeout=60, what=promql)
    return value


async def test_prometheus_scrapes_queue_send_ingest_and_api_figures(
    stack: list[RunningService], api_url: str, prometheus: str, infra: Infra
) -> None:
    owner = create_account(infra, "metrics.test", "owner")
    client = create_account(infra, "buyer.test", "bob")
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as api:
        created = await api.post("/v1/workspaces", json={"name": "M", "domains": ["metrics.test"]})
        assert created.status_code == 201, created.text
        api.headers["Authorization"] = f"Bearer {created.json()['api_key']}"
        contact = await api.post("/v1/contacts", json={"name": "Bob", "emails": [client.address]})
        assert contact.status_code == 201, contact.text
        mailbox = await api.post(
            "/v1/mailboxes", json=mailbox_connection(infra, owner, sync={"backfill_days": 30})
        )
        assert mailbox.status_code == 201, mailbox.text

        async def live() -> bool:
            found = await api.get(f"/v1/mailboxes/{mailbox.json()['id']}")
            return bool(found.json()["status"]["state"] == "live")

        # Delivered once the mailbox is live: new mail, whose sync lag ingest measures.
        await eventually(live, timeout=60, what="the mailbox live")
        message = build_message(
            sender=client.address, to=[owner.address], subject="Seats", body="How much?"
        )
        deliver(infra, message, [owner.address])

        async def thread_id() -> str | None:
            timeline = await api.get(f"/v1/contacts/{contact.json()['id']}/timeline")
            items = timeline.json()["items"]
            return str(items[0]["id"]) if items else None

        thread = await eventually(thread_id, timeout=60, what="the message on the timeline")
        reply = await api.post(
            f"/v1/threads/{thread}/reply", json={"body_text": "40 a seat.", "idempotency_key": "m1"}
        )
        assert reply.status_code == 202, reply.text

    for item in stack:
        await at_least(prometheus, f'up{{job="mailsync-{item.service.name}"}}', 1)

    processed = "mailsync_received_processed_messages_total"
    for job, queue in (
        ("capture", "mailsync.capture.shards"),
        ("associate", "mailsync.associate.shards"),
        ("send", "mailsync.send.requested"),
    ):
        labels = f'job="mailsync-{job}", handler="{queue}"'
        await at_least(prometheus, f'sum({processed}{{{labels}, status="acked"}})', 1)
        await at_least(
            prometheus,
            f"sum(mailsync_received_processed_messages_duration_seconds_count{{{labels}}})",
            1,
        )
    await at_least(
        prometheus,
        'sum(mailsync_published_messages_total{job="mailsync-send",'
        ' destination="mailsync.events.mailsync.email.sent.v1", status="success"})',
        1,
    )
    await at_least(
        prometheus,
        'sum(mailsync_http_request_duration_seconds_count{job="mailsync-api",'
        ' method="POST", route="/v1/threads/{thread_id}/reply", status="202"})',
        1,
    )
    await at_least(prometheus, 'sum(mailsync_ingest_mailboxes{state="live"})', 1)
    await at_least(prometheus, "sum(mailsync_ingest_sync_lag_seconds_count)", 1)
    # The message arrived after the mailbox went live: logged within a minute, not days.
    await at_least(prometheus, 'sum(mailsync_ingest_sync_lag_seconds_bucket{le="60.0"})', 1)
    await at_least(prometheus, 'sum(mailsync_send_outcomes_total{outcome="sent"})', 1)
    await at_least(
        prometheus,
        'sum(mailsync_send_smtp_seconds_count{job="mailsync-send", result="accepted"})',
        1,
    )
    failed = await query(prometheus, 'sum(mailsync_send_outcomes_total{outcome!="sent"})')
    assert float(failed[0]["value"][1]) == 0
    # No label carries a workspace: routing keys end with one, labels never do.
    series = await query(prometheus, '{__name__=~"mailsync_.*", handler!=""}')
    assert series
    assert all(not s["metric"]["handler"].endswith(created.json()["id"]) for s in series)
