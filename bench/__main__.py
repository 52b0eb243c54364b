"""`make bench`: pipeline figures beside the raw rates of the stages they are made of.

backfill_msgs_per_s: messages per second from INBOX to the timeline, end to end through
ingest, capture and associate, for a mailbox of BENCH_MESSAGES (default 2,000) messages. Its
baseline is the slowest raw stage measured in the same run: whole-message IMAP fetch from the
same mailbox, or storing raw bytes plus a message document.
"""

import asyncio
import os
import sys
import time
from pathlib import Path

import httpx
from cryptography.fernet import Fernet
from pymongo import AsyncMongoClient

from bench.mailbox import CLIENTS, create_filled_mailbox, raw_fetch_rate
from bench.report import Figure, table, write
from bench.store import raw_write_rate
from mailsync_devtools.stack import running_stack
from mailsync_shared.storage.client import Document

REPO = Path(__file__).resolve().parents[1]
DATABASE = "mailsync_bench"


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


async def backfill_rate(owner: str, password: str, count: int) -> float:
    imap_host = env("MAILSYNC_IMAP_HOST", "127.0.0.1")
    server = {"host": imap_host, "security": "none", "username": owner, "password": password}
    async with httpx.AsyncClient(base_url="http://127.0.0.1:8000", timeout=60) as api:
        workspace = (await api.post("/v1/workspaces", json={"name": "Bench"})).json()
        api.headers["Authorization"] = f"Bearer {workspace['api_key']}"
        for index, address in enumerate(CLIENTS):
            response = await api.post(
                "/v1/contacts", json={"name": f"Client {index}", "emails": [address]}
            )
            response.raise_for_status()
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            env("MAILSYNC_MONGODB_URL", "mongodb://127.0.0.1:27017/")
        )
        messages = client[DATABASE]["messages"]
        started = time.perf_counter()
        response = await api.post(
            "/v1/mailboxes",
            json={
                "address": owner,
                "imap": {**server, "port": int(env("MAILSYNC_IMAP_PORT", "10143"))},
                "smtp": {**server, "port": int(env("MAILSYNC_SMTP_PORT", "10587"))},
                "sync": {"backfill_days": 30},
            },
        )
        response.raise_for_status()
        done = 0
        last_report = started
        while done < count:
            await asyncio.sleep(0.25)
            done = await messages.count_documents({"workspace_id": workspace["id"]})
            if time.perf_counter() - last_report > 5:
                print(f"  backfill: {done}/{count} messages logged", flush=True)
                last_report = time.perf_counter()
            if time.perf_counter() - started > 1200:
                raise RuntimeError(f"backfill stalled at {done}/{count}")
        elapsed = time.perf_counter() - started
        await client.close()
    return count / elapsed


async def main() -> int:
    count = int(env("BENCH_MESSAGES", "2000"))
    host = env("MAILSYNC_IMAP_HOST", "127.0.0.1")
    users_file = env("MAILSYNC_MAIL_USERS_FILE", str(REPO / ".infra/dovecot/users"))
    mongodb_url = env("MAILSYNC_MONGODB_URL", "mongodb://127.0.0.1:27017/")
    print(f"filling a mailbox with {count} messages", flush=True)
    owner, password = await asyncio.to_thread(
        create_filled_mailbox, users_file, host, int(env("MAILSYNC_LMTP_PORT", "10024")), count
    )
    print("measuring the raw IMAP fetch rate", flush=True)
    fetch = await asyncio.to_thread(
        raw_fetch_rate, host, int(env("MAILSYNC_IMAP_PORT", "10143")), owner, password
    )
    print("measuring the raw store write rate", flush=True)
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb_url)
    await client.drop_database(DATABASE)
    await client.close()
    store = await raw_write_rate(mongodb_url, DATABASE, count)
    service_env = {
        "MAILSYNC_MONGODB_DATABASE": DATABASE,
        "MAILSYNC_SECRET_KEY": Fernet.generate_key().decode(),
        "MAILSYNC_ALLOW_PRIVATE_HOSTS": "true",
        "MAILSYNC_LOG_LEVEL": "WARNING",
    }
    print("measuring backfill end to end (ingest -> capture -> associate)", flush=True)
    with running_stack(service_env, REPO / ".bench/logs"):
        backfill = await backfill_rate(owner, password, count)
    slowest_raw = min(fetch, store)
    figures = [
        Figure("backfill_msgs_per_s", backfill, "msg/s", slowest_raw),
        Figure("imap_fetch_msgs_per_s", fetch, "msg/s"),
        Figure("store_write_msgs_per_s", store, "msg/s"),
    ]
    write(figures)
    print()
    print(table(figures))
    print(f"\nwritten to {REPO / '.bench/latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
