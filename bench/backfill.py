"""Backfill: messages per second from INBOX to logged and announced, end to end.

The baseline is the slowest raw stage measured in the same run on the same mailbox:
whole-message IMAP fetch, or storing raw bytes plus a message document. Beside it, the rate
of ingest alone (until its checkpoints cover the mailbox: fetched, stored, published and
confirmed), so a slow end-to-end figure points at the stage that holds it back.

Beside those, what two established mail-sync tools manage on the same mailbox in the same
run (`bench.mirror_tools`): mbsync (isync, C) and offlineimap (Python), each mirroring the
INBOX into a Maildir; `backfill_msgs_per_s_vs_mbsync` and `..._vs_offlineimap` carry the ratio.

The CPU each part of the system spent per message end to end (`bench.cpu`) is set against
the CPU per message of the raw store write, and turned into the rate this machine's cores
allow when all of them work on the pipeline (`backfill_cpu_bound_msgs_per_s`).
"""

import asyncio
import os
import time
import uuid
from typing import Any

import httpx
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from bench.context import DATABASE, BenchContext
from bench.cpu import CpuMeter, peak_rss_mib
from bench.mailbox import (
    IsolatedStack,
    create_filled_mailbox,
    create_workspace_with_clients,
    free_port,
    isolated_stack,
    mailbox_connection,
    own_vhost,
    raw_fetch_rate,
)
from bench.mirror_tools import mbsync_rate, offlineimap_rate
from bench.report import Figure
from bench.store import raw_write_rate
from bench.watch import first_seen
from mailsync_devtools.stack import Service, running_stack
from mailsync_shared.contracts.records import EmailLogged
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument, ServerAccount, SyncPolicy
from mailsync_shared.topology import EVENTS_EXCHANGE


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
    print("backfill: mbsync and offlineimap mirroring the same mailbox", flush=True)
    mbsync = await asyncio.to_thread(
        mbsync_rate, context.imap_host, context.imap_port, owner, password
    )
    offlineimap = await asyncio.to_thread(
        offlineimap_rate, context.imap_host, context.imap_port, owner, password
    )
    print("backfill: raw store write rate", flush=True)
    store = await raw_write_rate(context.mongodb_url, f"{DATABASE}_store", count)
    print("backfill: ingest alone (own broker vhost and database)", flush=True)
    ingest = await _ingest_alone_rate(context, owner, password, count)
    slowest_raw = min(fetch, store.msgs_per_s)
    figures = [Figure("ingest_backfill_msgs_per_s", ingest, "msg/s", slowest_raw)]
    if os.environ.get("BENCH_END_TO_END", "1") != "0":
        print("backfill: end to end through ingest, capture and associate", flush=True)
        with isolated_stack(context, "backfill") as stack:
            backfill, used = await _end_to_end_rate(context, stack, owner, password, count)
            memory = _memory_figures(stack.pids)
        figures = [
            Figure("backfill_msgs_per_s", backfill, "msg/s", slowest_raw),
            Figure("backfill_msgs_per_s_vs_mbsync", backfill, "msg/s", mbsync),
            Figure("backfill_msgs_per_s_vs_offlineimap", backfill, "msg/s", offlineimap),
            *figures,
            *_cpu_figures(used, store.cpu_ms_per_msg, slowest_raw),
            *memory,
        ]
    return [
        *figures,
        Figure("imap_fetch_msgs_per_s", fetch, "msg/s"),
        Figure("mbsync_msgs_per_s", mbsync, "msg/s"),
        Figure("offlineimap_msgs_per_s", offlineimap, "msg/s"),
        Figure("store_write_msgs_per_s", store.msgs_per_s, "msg/s"),
        Figure("store_write_cpu_ms_per_msg", store.cpu_ms_per_msg, "ms"),
    ]


def _cpu_figures(used: dict[str, float], store_write_ms: float, slowest_raw: float) -> list[Figure]:
    """What a message costs end to end, in CPU, and the rate that cost allows on this machine.

    `backfill_cpu_bound_msgs_per_s` is the end-to-end rate with every core busy on the
    pipeline; against the slowest raw stage it is the best ratio this machine allows.
    """
    total = sum(used.values())
    cores = os.cpu_count() or 1
    return [
        Figure("backfill_cpu_ms_per_msg", total, "ms", store_write_ms),
        *(
            Figure(f"backfill_cpu_ms_per_msg_{part}", ms, "ms")
            for part, ms in sorted(used.items(), key=lambda item: -item[1])
        ),
        Figure("backfill_cpu_bound_msgs_per_s", cores * 1000 / total, "msg/s", slowest_raw),
    ]


def _memory_figures(pids: dict[str, int]) -> list[Figure]:
    """Each service's peak resident memory over the backfill: what its memory request needs."""
    return [
        Figure(f"backfill_peak_rss_mib_{service}", mib, "MiB")
        for service, pid in sorted(pids.items())
        if (mib := peak_rss_mib(pid)) is not None
    ]


async def _ingest_alone_rate(context: BenchContext, owner: str, password: str, count: int) -> float:
    """Messages per second through ingest alone: fetched, stored, published and confirmed.

    One `python -m mailsync_ingest` with a vhost and database of its own, so nothing else
    consumes or competes; the mailbox document is written directly, without the api.
    """
    database = f"{DATABASE}_ingest"
    rabbitmq_url = os.environ.get("MAILSYNC_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    client: AsyncMongoClient[Document] = AsyncMongoClient(context.mongodb_url)
    await client.drop_database(database)
    mailboxes = client[database]["mailboxes"]
    account = ServerAccount(
        host=context.imap_host,
        port=context.imap_port,
        security="none",
        username=owner,
        secret_encrypted=CredentialCipher(SecretStr(context.secret_key)).encrypt(password),
    )
    mailbox = MailboxDocument(
        workspace_id=f"bench{uuid.uuid4().hex[:8]}",
        address=owner,
        imap=account,
        smtp=account,
        sync=SyncPolicy(backfill_days=30),
    )
    try:
        with own_vhost(rabbitmq_url) as vhost_url:
            env = {
                **context.service_env,
                "MAILSYNC_RABBITMQ_URL": vhost_url,
                "MAILSYNC_MONGODB_DATABASE": database,
            }
            alone = Service("ingest", free_port())
            with running_stack(env, context.log_dir / "ingest-alone", (alone,)):
                started = time.perf_counter()
                await mailboxes.insert_one(mailbox.to_document())
                ingested = 0
                while ingested < count:
                    await asyncio.sleep(0.1)
                    ingested = await _ingested(mailboxes, mailbox.workspace_id)
                    if time.perf_counter() - started > 600:
                        raise RuntimeError(f"ingest stalled at {ingested}/{count}")
                return count / (time.perf_counter() - started)
    finally:
        await client.drop_database(database)
        await client.close()


async def _ingested(mailboxes: Any, workspace_id: str) -> int:
    """Messages ingest has published and checkpointed for the workspace's mailbox."""
    document = await mailboxes.find_one({"workspace_id": workspace_id}, {"folders": 1})
    folders = (document or {}).get("folders") or {}
    return sum(int(folder.get("done", 0)) for folder in folders.values())


async def _end_to_end_rate(
    context: BenchContext, stack: IsolatedStack, owner: str, password: str, count: int
) -> tuple[float, dict[str, float]]:
    """Messages per second from the mailbox's connection until all are logged and announced,
    and the CPU milliseconds per message of each part of the system meanwhile.

    Progress is the `email.logged` events, published once each message is stored on its
    thread; at the end, the store is checked to hold every one of them.
    """
    meter = CpuMeter(stack.pids, store_url=context.mongodb_url)
    client: AsyncMongoClient[Document] = AsyncMongoClient(context.mongodb_url)
    messages = client[stack.database]["messages"]
    mailboxes = client[stack.database]["mailboxes"]
    limit = float(os.environ.get("BENCH_E2E_TIMEOUT", "900"))
    async with (
        httpx.AsyncClient(base_url=stack.api_url, timeout=60) as api,
        first_seen(
            stack.rabbitmq_url, EVENTS_EXCHANGE, EmailLogged, lambda event: event.data.message_id
        ) as logged,
    ):
        workspace = await create_workspace_with_clients(api, "Bench")
        meter.start()
        started = time.perf_counter()
        response = await api.post(
            "/v1/mailboxes",
            json=mailbox_connection(context, owner, password),
            headers=workspace.headers,
        )
        response.raise_for_status()
        last_report = started
        while len(logged) < count:
            await asyncio.sleep(0.05)
            now = time.perf_counter()
            if now - last_report > 5:
                ingested = await _ingested(mailboxes, workspace.id)
                print(f"  backfill: {ingested}/{count} ingested, {len(logged)} logged", flush=True)
                last_report = now
            if now - started > limit:
                print(f"  backfill: stopped at {len(logged)}/{count} logged after {limit:.0f} s")
                break
        used = meter.stop()
        elapsed = (max(logged.values()) if logged else time.perf_counter()) - started
    stored = await messages.count_documents({"workspace_id": workspace.id})
    await client.close()
    if stored < len(logged):
        raise RuntimeError(f"{len(logged)} messages announced as logged but {stored} stored")
    return len(logged) / elapsed, used.ms_per(max(len(logged), 1))
