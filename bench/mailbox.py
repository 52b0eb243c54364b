"""A benchmark mailbox on the local Dovecot, filled with realistic client mail, and the
services that sync it, isolated from anything else running on the machine (a RabbitMQ vhost,
a database and HTTP ports of their own)."""

import os
import smtplib
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from imapclient import IMAPClient
from pymongo import MongoClient

from bench.context import DATABASE, BenchContext
from mailsync_devmail.accounts import add_account
from mailsync_devtools.stack import SERVICES, Service, running_stack

CLIENTS = [f"client{index}@customer{index % 7}.test" for index in range(20)]
PARAGRAPH = (
    "Thanks for the call earlier. As discussed, we would like to move forward with the pilot "
    "for the sales team, starting with the onboarding sessions next week. Could you confirm "
    "the pricing for the additional seats and the timeline for the data import? "
)


def message(owner: str, index: int, now: datetime) -> EmailMessage:
    sender = CLIENTS[index % len(CLIENTS)]
    mail = EmailMessage()
    mail["From"] = f"Client {index % len(CLIENTS)} <{sender}>"
    mail["To"] = owner
    mail["Subject"] = f"Pilot planning, part {index}"
    mail["Date"] = format_datetime(now - timedelta(minutes=index))
    mail["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    mail.set_content((PARAGRAPH * 6) + f"\n\nReference {index}\n")
    return mail


@dataclass(frozen=True)
class BenchWorkspace:
    id: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def create_workspace_with_clients(api: httpx.AsyncClient, name: str) -> BenchWorkspace:
    """A new workspace, through the api, whose contacts are the senders of `message`'s mail."""
    response = await api.post("/v1/workspaces", json={"name": name})
    response.raise_for_status()
    workspace = BenchWorkspace(response.json()["id"], response.json()["api_key"])
    for index, address in enumerate(CLIENTS):
        response = await api.post(
            "/v1/contacts",
            json={"name": f"Client {index}", "emails": [address]},
            headers=workspace.headers,
        )
        response.raise_for_status()
    return workspace


def mailbox_connection(context: BenchContext, owner: str, password: str) -> dict[str, object]:
    """The body of `POST /v1/mailboxes` for a benchmark account: backfill of the last 30 days."""
    server = {
        "host": context.imap_host,
        "security": "none",
        "username": owner,
        "password": password,
    }
    return {
        "address": owner,
        "imap": {**server, "port": context.imap_port},
        "smtp": {**server, "host": context.smtp_host, "port": context.smtp_port},
        "sync": {"backfill_days": 30},
    }


def create_filled_mailbox(
    users_file: Path, host: str, lmtp_port: int, count: int
) -> tuple[str, str]:
    """A fresh account whose INBOX holds `count` messages; returns (address, password)."""
    owner = f"bench-{uuid.uuid4().hex[:8]}@acme.test"
    password = uuid.uuid4().hex
    add_account(users_file, owner, password)
    now = datetime.now(UTC)
    with smtplib.LMTP(host, lmtp_port) as lmtp:
        for index in range(count):
            lmtp.send_message(message(owner, index, now), to_addrs=[owner])
    return owner, password


def raw_fetch_rate(host: str, port: int, owner: str, password: str, batch: int = 200) -> float:
    """Messages per second for read-only UID FETCH of whole messages, in batches."""
    with IMAPClient(host, port=port, ssl=False) as client:
        client.login(owner, password)
        client.select_folder("INBOX", readonly=True)
        uids = client.search("ALL")
        started = time.perf_counter()
        fetched = 0
        for offset in range(0, len(uids), batch):
            fetched += len(client.fetch(uids[offset : offset + batch], ["BODY.PEEK[]"]))
        elapsed = time.perf_counter() - started
    return fetched / elapsed


@contextmanager
def own_vhost(rabbitmq_url: str) -> Iterator[str]:
    """A fresh RabbitMQ vhost (management API) for one measurement; its AMQP URL."""
    parts = urlsplit(rabbitmq_url)
    vhost = f"mailsync-bench-{uuid.uuid4().hex[:8]}"
    management = os.environ.get(
        "MAILSYNC_RABBITMQ_MANAGEMENT_URL", f"http://{parts.hostname}:15672"
    )
    auth = (parts.username or "guest", parts.password or "guest")
    httpx.put(f"{management}/api/vhosts/{vhost}", auth=auth, timeout=10).raise_for_status()
    httpx.put(
        f"{management}/api/permissions/{vhost}/{auth[0]}",
        json={"configure": ".*", "write": ".*", "read": ".*"},
        auth=auth,
        timeout=10,
    ).raise_for_status()
    try:
        yield urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))
    finally:
        httpx.delete(f"{management}/api/vhosts/{vhost}", auth=auth, timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class IsolatedStack:
    api_url: str
    database: str
    rabbitmq_url: str
    pids: dict[str, int]
    env: dict[str, str]


@contextmanager
def isolated_stack(
    context: BenchContext, name: str, without: tuple[str, ...] = ()
) -> Iterator[IsolatedStack]:
    """The five services (less the ones named in `without`, which the caller runs itself with
    `env`) on free ports with their own vhost and database.

    Started with the same commands as `mailsync_devtools.stack`, only the ports differ, so a
    benchmark never shares queues, data or ports with a test run on the same machine.
    """
    database = f"{DATABASE}_{name}"
    client: MongoClient[dict[str, object]] = MongoClient(context.mongodb_url)
    client.drop_database(database)
    rabbitmq_url = os.environ.get("MAILSYNC_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/")
    services = tuple(
        Service(service.name, free_port()) for service in SERVICES if service.name not in without
    )
    try:
        with own_vhost(rabbitmq_url) as vhost_url:
            env = {
                **context.service_env,
                "MAILSYNC_RABBITMQ_URL": vhost_url,
                "MAILSYNC_MONGODB_DATABASE": database,
            }
            with running_stack(env, context.log_dir / name, services) as running:
                api = next(service for service in services if service.name == "api")
                pids = {item.service.name: item.process.pid for item in running}
                yield IsolatedStack(f"http://127.0.0.1:{api.port}", database, vhost_url, pids, env)
    finally:
        client.drop_database(database)
        client.close()
