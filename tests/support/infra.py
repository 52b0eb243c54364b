"""Where the test suite finds the real services.

URLs come from the environment (`eval "$(deploy/infra.sh env)"`, done by `make test`), with the
defaults of `make infra`. A missing service fails the test that needs it; nothing is skipped.
"""

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
import pytest
from pymongo import AsyncMongoClient

from mailsync_shared.storage.client import Document

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Infra:
    rabbitmq_url: str
    mongodb_url: str
    imap_host: str
    imap_port: int
    lmtp_port: int
    smtp_host: str
    smtp_port: int
    dovecot_config: Path
    mail_users_file: Path
    # Base64 of the HS256 key Dovecot checks XOAUTH2 access tokens (JWTs) with.
    dovecot_oauth2_key: Path


def isolated_vhost_url(rabbitmq_url: str, vhost: str) -> str:
    """Create `vhost` on the broker (management API) and return the AMQP URL that uses it.

    Each test session gets its own vhost, so sessions running at once on one machine never
    consume each other's messages from the fixed queue names.
    """
    parts = urlsplit(rabbitmq_url)
    user, password = parts.username or "guest", parts.password or "guest"
    management = os.environ.get(
        "MAILSYNC_RABBITMQ_MANAGEMENT_URL", f"http://{parts.hostname}:15672"
    )
    auth = (user, password)
    try:
        created = httpx.put(f"{management}/api/vhosts/{vhost}", auth=auth, timeout=10)
        created.raise_for_status()
        granted = httpx.put(
            f"{management}/api/permissions/{vhost}/{user}",
            json={"configure": ".*", "write": ".*", "read": ".*"},
            auth=auth,
            timeout=10,
        )
        granted.raise_for_status()
    except httpx.HTTPError as error:
        pytest.fail(
            f"RabbitMQ management API not usable at {management} ({error}); "
            "start the local infrastructure with `make infra`",
            pytrace=False,
        )
    return urlunsplit(parts._replace(path="/" + quote(vhost, safe="")))


def delete_vhost(rabbitmq_url: str, vhost: str) -> None:
    parts = urlsplit(rabbitmq_url)
    management = os.environ.get(
        "MAILSYNC_RABBITMQ_MANAGEMENT_URL", f"http://{parts.hostname}:15672"
    )
    auth = (parts.username or "guest", parts.password or "guest")
    httpx.delete(f"{management}/api/vhosts/{vhost}", auth=auth, timeout=30)


def infra_from_env() -> Infra:
    env = os.environ
    return Infra(
        rabbitmq_url=env.get("MAILSYNC_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/"),
        mongodb_url=env.get(
            "MAILSYNC_MONGODB_URL", env.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
        ),
        imap_host=env.get("MAILSYNC_IMAP_HOST", "127.0.0.1"),
        imap_port=int(env.get("MAILSYNC_IMAP_PORT", "10143")),
        lmtp_port=int(env.get("MAILSYNC_LMTP_PORT", "10024")),
        smtp_host=env.get("MAILSYNC_SMTP_HOST", "127.0.0.1"),
        smtp_port=int(env.get("MAILSYNC_SMTP_PORT", "10587")),
        dovecot_config=Path(
            env.get("MAILSYNC_DOVECOT_CONFIG", REPO / ".infra/dovecot/dovecot.conf")
        ),
        mail_users_file=Path(env.get("MAILSYNC_MAIL_USERS_FILE", REPO / ".infra/dovecot/users")),
        dovecot_oauth2_key=Path(
            env.get(
                "MAILSYNC_DOVECOT_OAUTH2_KEY",
                REPO / ".infra/dovecot/oauth2-keys/default/HS256/default",
            )
        ),
    )


def require_port(name: str, host: str, port: int) -> None:
    """Fail (never skip) when a service the test needs is not listening."""
    try:
        with socket.create_connection((host, port), timeout=3):
            return
    except OSError as error:
        pytest.fail(
            f"{name} is not reachable at {host}:{port} ({error}); start it with `make infra`",
            pytrace=False,
        )


async def mongo_client(infra: Infra) -> AsyncMongoClient[Document]:
    """A client of the MongoDB-wire server, once it answers; fails the test when it does not."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        infra.mongodb_url, tz_aware=True, serverSelectionTimeoutMS=5000
    )
    try:
        await client.admin.command("ping")
    except Exception as error:
        await client.close()
        pytest.fail(f"MongoDB-wire server not reachable at {infra.mongodb_url}: {error}")
    return client
