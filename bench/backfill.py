"""Backfill: messages per second from INBOX to the timeline, end to end.

The baseline is the slowest raw stage measured in the same run on the same mailbox:
whole-message IMAP fetch, or storing raw bytes plus a message document.
"""

import asyncio
import os
import time

import httpx
from pymongo import AsyncMongoClient

from bench.context import DATABASE, BenchContext
from bench.mailbox import CLIENTS, create_filled_mailbox, raw_fetch_rate
from bench.report import Figure
from bench.store import raw_write_rate
from mailsync_devtools.stack import running_stack
from mailsync_shared.storage.client import Document


async def run(context: BenchContext) -> list[Figure]:
    count = int(os.environ.get("BENCH_MESSAGES", "2000"))
    print(f"backfill: filling a mailbox with {count} messages", flush=True)
    owner, password = await asyncio.to_thread(
        create_filled_mailbox, context.users_file, context.imap_host, context.lmtp_port, count
    )
    print("backfill: raw IMAP fetch rate", flush=True)
    fetch = await asyncio.to_thread(
        raw_fetch_rate, context.imap_host, context.imap_port, owner, password
    )
    print("backfill: raw store write rate", flush=True)
    client: AsyncMongoClient[Document] = AsyncMongoClient(context.mongodb_url)
    await client.drop_database(DATABASE)
    await client.close()
    store = await raw_write_rate(context.mongodb_url, DATABASE, count)
    print("backfill: end to end through ingest, capture and associate", flush=True)
    with running_stack(context.service_env, context.log_dir):
        backfill = await _end_to_end_rate(context, owner, password, count)
    return [
        Figure("backfill_msgs_per_s", backfill, "msg/s", min(fetch, store)),
        Figure("imap_fetch_msgs_per_s", fetch, "msg/s"),
        Figure("store_write_msgs_per_s", store, "msg/s"),
    ]


async def _end_to_end_rate(context: BenchContext, owner: str, password: str, count: int) -> float:
    server = {
        "host": context.imap_host,
        "security": "none",
        "username": owner,
        "password": password,
    }
    client: AsyncMongoClient[Document] = AsyncMongoClient(context.mongodb_url)
    messages = client[DATABASE]["messages"]
    async with httpx.AsyncClient(base_url=context.api_url, timeout=60) as api:
        workspace = (await api.post("/v1/workspaces", json={"name": "Bench"})).json()
        api.headers["Authorization"] = f"Bearer {workspace['api_key']}"
        for index, address in enumerate(CLIENTS):
            response = await api.post(
                "/v1/contacts", json={"name": f"Client {index}", "emails": [address]}
            )
            response.raise_for_status()
        started = time.perf_counter()
        response = await api.post(
            "/v1/mailboxes",
            json={
                "address": owner,
                "imap": {**server, "port": context.imap_port},
                "smtp": {**server, "host": context.smtp_host, "port": context.smtp_port},
                "sync": {"backfill_days": 30},
            },
        )
        response.raise_for_status()
        done = 0
        last_report = started
        while done < count:
            await asyncio.sleep(0.25)
            done = await messages.count_documents({"workspace_id": workspace["id"]})
            now = time.perf_counter()
            if now - last_report > 5:
                print(f"  backfill: {done}/{count} messages logged", flush=True)
                last_report = now
            if now - started > 1200:
                raise RuntimeError(f"backfill stalled at {done}/{count}")
        elapsed = time.perf_counter() - started
    await client.close()
    return count / elapsed
