"""XOAUTH2 mailboxes: access tokens are refreshed from the account's token endpoint (a local
one here), and a refusal becomes the mailbox's error status with its reason."""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest
from pydantic import SecretStr

from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.storage.documents import MailboxDocument
from tests.integration.conftest_ingest import (  # noqa: F401  (fixtures register by name)
    IngestCase,
    ingest_fixture,
)
from tests.support.mail import create_account
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


@dataclass
class TokenEndpoint:
    url: str
    refused_tokens: set[str]
    requests: list[dict[str, str]] = field(default_factory=list)


@contextmanager
def token_endpoint(refused_tokens: set[str]) -> Iterator[TokenEndpoint]:
    """An OAuth 2.0 token endpoint: `refresh_token` grants answer a new access token, unless
    the refresh token is in `refused_tokens` (then 400 `invalid_grant`, as on revocation)."""
    endpoint = TokenEndpoint(url="", refused_tokens=refused_tokens)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            endpoint.requests.append(form)
            body: dict[str, str | int]
            if form.get("refresh_token") in endpoint.refused_tokens:
                status, body = 400, {"error": "invalid_grant"}
            else:
                token = f"access-{len(endpoint.requests)}"
                status, body = 200, {"access_token": token, "expires_in": 3600}
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    endpoint.url = f"http://127.0.0.1:{server.server_address[1]}/token"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield endpoint
    finally:
        server.shutdown()
        server.server_close()


def oauth_mailbox(
    ingest: IngestCase, address: str, refresh_token: str, url: str
) -> MailboxDocument:
    cipher = CredentialCipher(SecretStr(ingest.secret_key))
    base = ingest.mailbox(create_account(ingest.infra, "acme.test", "oauth"))
    imap = base.imap.model_copy(
        update={
            "auth": "xoauth2",
            "username": address,
            "secret_encrypted": cipher.encrypt(refresh_token),
            "token_endpoint": url,
            "client_id": "mailsync-test",
            "client_secret_encrypted": cipher.encrypt("client-secret"),
        }
    )
    return base.model_copy(update={"imap": imap, "address": address})


async def test_tokens_are_refreshed_and_refusals_become_the_mailbox_status(
    ingest: IngestCase,
) -> None:
    with token_endpoint(refused_tokens={"revoked-refresh-token"}) as endpoint:
        # Dovecot here offers no XOAUTH2, so a fresh token is refused by the IMAP server.
        refused_by_server = oauth_mailbox(
            ingest, "ann@acme.test", "good-refresh-token", endpoint.url
        )
        revoked = oauth_mailbox(ingest, "bob@acme.test", "revoked-refresh-token", endpoint.url)
        for mailbox in (refused_by_server, revoked):
            await ingest.add_mailbox(mailbox)

        async with ingest.worker(ingest.settings()):

            async def both_in_error() -> dict[str, str] | None:
                reasons: dict[str, str] = {}
                for mailbox in (refused_by_server, revoked):
                    status = (await ingest.state(mailbox.id)).status
                    if status.state != "error" or status.reason is None:
                        return None
                    reasons[mailbox.address] = status.reason
                return reasons

            reasons = await eventually(both_in_error, what="both mailboxes in error", timeout=30)

    assert reasons["ann@acme.test"].startswith("authentication failed")
    assert (
        reasons["bob@acme.test"]
        == "authorization refused: token refresh refused (400 invalid_grant)"
    )
    good = [r for r in endpoint.requests if r["refresh_token"] == "good-refresh-token"]
    # The first token was refused by the server, so it was refreshed once more before giving up.
    assert len(good) == 2
    assert good[0] == {
        "grant_type": "refresh_token",
        "refresh_token": "good-refresh-token",
        "client_id": "mailsync-test",
        "client_secret": "client-secret",
    }
    assert all("good-refresh-token" not in reason for reason in reasons.values())
