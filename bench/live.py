"""Live latency: from an APPEND into INBOX to the message on the contact's timeline, with IDLE.

Each sample appends one new message from a known contact over IMAP and polls
`GET /v1/contacts/{id}/timeline` until the message is there. The baseline is the raw IMAP
APPEND round trip measured in the same run: the part of the latency no pipeline can remove.
"""

import asyncio
import imaplib
import os
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import httpx

from bench.context import BenchContext
from bench.mailbox import isolated_stack
from bench.report import Figure
from bench.watch import first_seen
from mailsync_devmail.accounts import add_account
from mailsync_shared.contracts.mail import MessageFetched
from mailsync_shared.topology import WORK_EXCHANGE

CLIENT = "live-client@customer.test"
POLL_SECONDS = 0.01


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 50 samples is the largest but none)."""
    ordered = sorted(samples)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


def _message(owner: str, index: int) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = f"Live Client <{CLIENT}>"
    mail["To"] = owner
    mail["Subject"] = f"Live question {index} {uuid.uuid4().hex[:6]}"
    mail["Date"] = format_datetime(datetime.now(UTC))
    mail["Message-ID"] = make_msgid(domain="customer.test")
    mail.set_content("Is the pilot still on for Thursday?\n")
    return mail


async def run(context: BenchContext) -> list[Figure]:
    samples = int(os.environ.get("BENCH_LIVE_SAMPLES", "50"))
    owner = f"live-{uuid.uuid4().hex[:8]}@acme.test"
    password = uuid.uuid4().hex
    add_account(context.users_file, owner, password)
    print(f"live: {samples} messages appended one at a time, IDLE on", flush=True)
    with isolated_stack(context, "live") as stack:
        async with first_seen(
            stack.rabbitmq_url, WORK_EXCHANGE, MessageFetched, lambda event: event.data.message_id
        ) as fetched_at:
            latencies, appends, started = await _measure(
                context, stack.api_url, owner, password, samples
            )
    ingest = [
        (fetched_at[message_id] - at) * 1000
        for message_id, at in started.items()
        if message_id in fetched_at
    ]
    return [
        Figure(
            "live_one_latency_p50_ms", percentile(latencies, 0.5), "ms", percentile(appends, 0.5)
        ),
        Figure(
            "live_one_latency_p99_ms", percentile(latencies, 0.99), "ms", percentile(appends, 0.99)
        ),
        Figure("live_one_ingest_p50_ms", percentile(ingest, 0.5), "ms", percentile(appends, 0.5)),
        Figure("live_one_ingest_p99_ms", percentile(ingest, 0.99), "ms", percentile(appends, 0.99)),
        Figure("imap_append_p50_ms", percentile(appends, 0.5), "ms"),
    ]


async def _measure(
    context: BenchContext, api_url: str, owner: str, password: str, samples: int
) -> tuple[list[float], list[float], dict[str, float]]:
    """Latencies and APPEND round trips in ms, and when each message's APPEND started."""
    server = {"host": context.imap_host, "security": "none", "username": owner}
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as api:
        workspace = (await api.post("/v1/workspaces", json={"name": "Live bench"})).json()
        api.headers["Authorization"] = f"Bearer {workspace['api_key']}"
        contact = (
            await api.post("/v1/contacts", json={"name": "Live Client", "emails": [CLIENT]})
        ).json()
        response = await api.post(
            "/v1/mailboxes",
            json={
                "address": owner,
                "imap": {**server, "port": context.imap_port, "password": password},
                "smtp": {**server, "port": context.smtp_port, "password": password},
                "sync": {"backfill_days": None},
            },
        )
        response.raise_for_status()
        mailbox_id = response.json()["id"]
        await _until_live(api, mailbox_id)
        imap = await asyncio.to_thread(_imap_login, context, owner, password)
        latencies: list[float] = []
        appends: list[float] = []
        started_at: dict[str, float] = {}
        try:
            for index in range(samples):
                mail = _message(owner, index)
                started = time.perf_counter()
                started_at[str(mail["Message-ID"])] = started
                await asyncio.to_thread(imap.append, "INBOX", None, None, mail.as_bytes())
                appends.append((time.perf_counter() - started) * 1000)
                await _until_on_timeline(api, contact["id"], mail["Message-ID"])
                latencies.append((time.perf_counter() - started) * 1000)
        finally:
            await asyncio.to_thread(imap.logout)
    print(
        f"  live: p50 {percentile(latencies, 0.5):.0f} ms, max {max(latencies):.0f} ms",
        flush=True,
    )
    return latencies, appends, started_at


def _imap_login(context: BenchContext, owner: str, password: str) -> imaplib.IMAP4:
    client = imaplib.IMAP4(context.imap_host, context.imap_port)
    client.login(owner, password)
    return client


async def _until_live(api: httpx.AsyncClient, mailbox_id: str, within: float = 60) -> None:
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        mailbox = (await api.get(f"/v1/mailboxes/{mailbox_id}")).json()
        if mailbox.get("status", {}).get("state") == "live":
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"mailbox {mailbox_id} not live after {within} s")


async def _until_on_timeline(
    api: httpx.AsyncClient, contact_id: str, message_id: str, within: float = 30
) -> None:
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        response = await api.get(f"/v1/contacts/{contact_id}/timeline", params={"limit": 5})
        if response.status_code == 200 and _shows(response.json(), message_id):
            return
        await asyncio.sleep(POLL_SECONDS)
    raise RuntimeError(f"{message_id} not on the timeline after {within} s")


def _shows(page: dict[str, Any], message_id: str) -> bool:
    return any(
        message.get("message_id") == message_id
        for thread in page.get("items", [])
        for message in thread.get("messages", [])
    )
