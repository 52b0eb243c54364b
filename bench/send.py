"""Send: messages per second from the api's request to the SMTP server's 250, and duplicates.

Requests go through `POST /v1/send-requests` of a running api; the send service relays them to
the local SMTP server, which delivers into Dovecot. Both run on free ports with a RabbitMQ
vhost and a database of their own, so nothing else on the machine consumes or competes. The
rate is counted from the first request to the last `sent_at` (recorded once the server
answered 250). The baseline is raw aiosmtplib submission to the same server in the same run,
at the same concurrency, each worker keeping one authenticated connection. Afterwards every
recipient's INBOX is read: a Message-ID delivered more than once is a duplicate (must be 0).
"""

import asyncio
import os
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import make_msgid

import aiosmtplib
import httpx
from imapclient import IMAPClient
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bench.context import DATABASE, BenchContext
from bench.mailbox import own_vhost
from bench.report import Figure
from mailsync_devmail.accounts import add_accounts
from mailsync_devtools.stack import SERVICES, free_ports, running_stack
from mailsync_shared.storage.client import Document

# Connections to the SMTP server at once: the raw baseline's workers, and the send service's
# connections for the one benchmark mailbox.
CONCURRENCY = 16
POST_CONCURRENCY = 16
RECIPIENTS = 10
STALL_SECONDS = 900
STACK = tuple(service for service in SERVICES if service.name in ("api", "send"))


async def run(context: BenchContext) -> list[Figure]:
    count = int(os.environ.get("BENCH_SENDS", "500"))
    run_id = uuid.uuid4().hex[:8]
    owner = f"sender-{run_id}@acme.test"
    recipients = [f"rcpt{index}-{run_id}@customer.test" for index in range(RECIPIENTS)]
    passwords = {address: uuid.uuid4().hex for address in [owner, *recipients]}
    await asyncio.to_thread(add_accounts, context.users_file, passwords)

    print(f"send: raw SMTP submission of {count} messages", flush=True)
    baseline = await _raw_rate(context, owner, passwords[owner], recipients, count)
    print(f"send: {count} send requests through the api and the send service", flush=True)
    database = f"{DATABASE}_send_{run_id}"
    client: AsyncMongoClient[Document] = AsyncMongoClient(context.mongodb_url)
    rabbitmq_url = os.environ.get("MAILSYNC_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    try:
        with own_vhost(rabbitmq_url) as vhost_url:
            env = {
                **context.service_env,
                "MAILSYNC_RABBITMQ_URL": vhost_url,
                "MAILSYNC_MONGODB_DATABASE": database,
                "MAILSYNC_SMTP_CONNECTIONS_PER_MAILBOX": str(CONCURRENCY),
                "MAILSYNC_REDISPATCH_AFTER_SECONDS": "10",
            }
            log_dir = context.log_dir / "send"
            with running_stack(env, log_dir, STACK, ports=free_ports(STACK)) as running:
                api_url = next(item.url for item in running if item.service.name == "api")
                rate, delivered_ids = await _pipeline_rate(
                    api_url, client[database], context, owner, passwords[owner], recipients, count
                )
    finally:
        await client.drop_database(database)
        await client.close()
    inboxes = await asyncio.to_thread(_message_ids, context, recipients, passwords, delivered_ids)
    duplicates = sum(n - 1 for n in Counter(inboxes).values() if n > 1)
    missing = len(set(delivered_ids) - set(inboxes))
    if missing:
        print(f"send: {missing} sent messages are not in the recipients' INBOX", flush=True)
    return [
        Figure("send_per_s", rate, "msg/s", baseline),
        Figure("smtp_submit_per_s", baseline, "msg/s"),
        Figure("send_duplicates", float(duplicates), "messages"),
    ]


def _message(owner: str, to: str, index: int) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = owner
    mail["To"] = to
    mail["Subject"] = f"Baseline {index}"
    mail["Message-ID"] = make_msgid(domain="acme.test")
    mail.set_content("A short note about the pilot.\n")
    return mail


async def _raw_rate(
    context: BenchContext, owner: str, password: str, recipients: list[str], count: int
) -> float:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    async def worker() -> None:
        smtp = aiosmtplib.SMTP(
            hostname=context.smtp_host, port=context.smtp_port, start_tls=False, use_tls=False
        )
        await smtp.connect()
        await smtp.login(owner, password)
        while not queue.empty():
            index = queue.get_nowait()
            await smtp.send_message(_message(owner, recipients[index % len(recipients)], index))
        await smtp.quit()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return count / (time.perf_counter() - started)


async def _pipeline_rate(
    api_url: str,
    db: AsyncDatabase[Document],
    context: BenchContext,
    owner: str,
    password: str,
    recipients: list[str],
    count: int,
) -> tuple[float, list[str]]:
    requests = db["send_requests"]
    server = {"host": context.imap_host, "security": "none", "username": owner}
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as api:
        workspace = (await api.post("/v1/workspaces", json={"name": "Send bench"})).json()
        api.headers["Authorization"] = f"Bearer {workspace['api_key']}"
        response = await api.post(
            "/v1/mailboxes",
            json={
                "address": owner,
                "imap": {**server, "port": context.imap_port, "password": password},
                "smtp": {
                    **server,
                    "host": context.smtp_host,
                    "port": context.smtp_port,
                    "password": password,
                },
                "sync": {"backfill_days": None},
                "append_to_sent": True,
            },
        )
        response.raise_for_status()
        mailbox_id = response.json()["id"]
        # The benchmark measures throughput, not the provider's per-mailbox limit.
        await db["mailboxes"].update_one(
            {"_id": mailbox_id}, {"$set": {"send_rate_per_minute": 100_000}}
        )
        pending: asyncio.Queue[int] = asyncio.Queue()
        for index in range(count):
            pending.put_nowait(index)

        async def post() -> None:
            while not pending.empty():
                index = pending.get_nowait()
                body = {
                    "mailbox_id": mailbox_id,
                    "to": [{"address": recipients[index % len(recipients)]}],
                    "subject": f"Pilot follow-up {index}",
                    "body_text": "Thanks for the call; the pilot plan is attached below.\n",
                    "idempotency_key": f"bench-{index}",
                }
                # A client retries a failed request with the same key; nothing is sent twice.
                for attempt in range(5):
                    answer = await api.post("/v1/send-requests", json=body)
                    if answer.status_code < 500:
                        break
                    await asyncio.sleep(0.1 * (attempt + 1))
                if answer.is_error:
                    raise RuntimeError(f"send request {index}: {answer.status_code} {answer.text}")

        started_at = datetime.now(UTC)
        started = time.perf_counter()
        await asyncio.gather(*(post() for _ in range(POST_CONCURRENCY)))
        posted = time.perf_counter() - started
        print(f"  send: {count} requests posted in {posted:.1f} s", flush=True)
        scope = {"workspace_id": workspace["id"]}
        settled_states = {"state": {"$in": ["sent", "failed", "unknown"]}}
        last_report = time.perf_counter()
        while (settled := await requests.count_documents({**scope, **settled_states})) < count:
            now = time.perf_counter()
            if now - last_report > 5:
                print(f"  send: {settled}/{count} settled", flush=True)
                last_report = now
            if now - started > STALL_SECONDS:
                print(f"send: stalled at {settled}/{count}; counting what was sent", flush=True)
                break
            await asyncio.sleep(2.0)
        documents = await requests.find(
            {**scope, "state": "sent"}, projection={"message_id": 1, "sent_at": 1}
        ).to_list()
    failed = count - len(documents)
    if failed:
        print(f"send: {failed} requests did not end `sent`", flush=True)
    last = max(document["sent_at"].replace(tzinfo=UTC) for document in documents)
    elapsed = max((last - started_at).total_seconds(), 1e-3)
    return len(documents) / elapsed, [str(document["message_id"]) for document in documents]


def _message_ids(
    context: BenchContext, recipients: list[str], passwords: dict[str, str], wanted: list[str]
) -> list[str]:
    """Every Message-ID in the recipients' INBOXes, waiting briefly for late deliveries."""
    deadline = time.monotonic() + 30
    while True:
        found: list[str] = []
        for address in recipients:
            with IMAPClient(context.imap_host, port=context.imap_port, ssl=False) as imap:
                imap.login(address, passwords[address])
                imap.select_folder("INBOX", readonly=True)
                uids = imap.search("ALL")
                for data in imap.fetch(uids, ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"]).values():
                    raw = data[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]
                    found.append(str(BytesHeaderParser().parsebytes(raw)["Message-ID"]).strip())
        if set(wanted) <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)
