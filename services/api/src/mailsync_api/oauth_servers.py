"""Connecting a mailbox account that logs in with XOAUTH2 instead of a password.

Before the account is stored, the refresh token is exchanged for an access token at the
provider's token endpoint (which must be a public host, like the mail servers), and that token
is used to log in over XOAUTH2, so a wrong grant is reported at once with the provider's answer.
"""

import asyncio
import base64
from urllib.parse import urlsplit

from mailsync_api.mail_servers import (
    HostNotAllowedError,
    MailServerError,
    ServerKind,
    imap_client,
    imap_login_answers,
    require_public_host,
    smtp_client,
    smtp_login_answers,
)
from mailsync_api.problems import ProblemError, invalid
from mailsync_api.schemas.mailboxes import ServerIn
from mailsync_api.settings import Settings
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.oauth import OAuthError, OAuthGrant, refresh_access_token, xoauth2_string
from mailsync_shared.storage.documents import ServerAccount


def _secret(value: object) -> str:
    getter = getattr(value, "get_secret_value", None)
    return str(getter()) if getter is not None else ""


def grant_of(server: ServerIn) -> OAuthGrant:
    """The grant given for an `xoauth2` account (the schema made sure it is complete)."""
    return OAuthGrant(
        token_endpoint=server.token_endpoint or "",
        client_id=server.client_id or "",
        refresh_token=_secret(server.refresh_token),
        client_secret=_secret(server.client_secret) or None,
        scope=server.scope,
    )


def oauth_account(server: ServerIn, cipher: CredentialCipher) -> ServerAccount:
    """The account as stored: refresh token and client secret encrypted."""
    client_secret = _secret(server.client_secret)
    return ServerAccount(
        host=server.host,
        port=server.port,
        security=server.security,
        username=server.username,
        auth="xoauth2",
        secret_encrypted=cipher.encrypt(_secret(server.refresh_token)),
        token_endpoint=server.token_endpoint,
        client_id=server.client_id,
        client_secret_encrypted=cipher.encrypt(client_secret) if client_secret else None,
        scope=server.scope,
    )


def xoauth2_raw(username: str, access_token: str) -> bytes:
    """The XOAUTH2 initial response before base64 (the clients encode it themselves)."""
    return base64.b64decode(xoauth2_string(username, access_token))


def _imap_xoauth2(server: ServerIn, token: str, timeout: float) -> None:
    client = imap_client(server.host, server.port, server.security, timeout)
    # imaplib base64-encodes what the callback returns; a second challenge (the server's
    # error details) is answered with an empty line, as XOAUTH2 asks.
    answers = iter([xoauth2_raw(server.username, token)])
    with imap_login_answers(client):
        client.authenticate("XOAUTH2", lambda _: next(answers, b""))


def _smtp_xoauth2(server: ServerIn, token: str, timeout: float) -> None:
    client = smtp_client(server.host, server.port, server.security, timeout)
    initial = xoauth2_raw(server.username, token).decode()
    with smtp_login_answers(client):
        client.auth("XOAUTH2", lambda challenge=None: initial if challenge is None else "")


async def check_xoauth2_server(kind: ServerKind, server: ServerIn, settings: Settings) -> None:
    """Refresh an access token and log in with it; a 422 problem with the answer otherwise."""
    grant = grant_of(server)
    endpoint = urlsplit(grant.token_endpoint)
    if not settings.allow_private_hosts:
        if endpoint.scheme != "https":
            raise invalid(f"body.{kind}.token_endpoint", "must be an https URL")
        try:
            await require_public_host(endpoint.hostname or "", endpoint.port or 443)
        except HostNotAllowedError as error:
            raise invalid(f"body.{kind}.token_endpoint", str(error)) from error
    try:
        token = await refresh_access_token(grant, timeout=settings.mail_server_timeout)
    except OAuthError as error:
        raise ProblemError(
            422,
            f"the token endpoint of the {kind.upper()} account gave no access token: "
            f"{error.reason}",
            kind="oauth-refresh-failed",
            title="OAuth token refresh failed",
            server=kind,
            reply=error.reason,
        ) from error
    login = _imap_xoauth2 if kind == "imap" else _smtp_xoauth2
    try:
        await asyncio.to_thread(login, server, token.value, settings.mail_server_timeout)
    except MailServerError as error:
        reply = error.reply.replace(token.value, "***")
        what = "refused the login" if error.kind == "login-refused" else "could not be reached"
        raise ProblemError(
            422,
            f"the {kind.upper()} server {server.host}:{server.port} {what}: {reply}",
            kind=f"mail-server-{error.kind}",
            title="Mail server check failed",
            server=kind,
            reply=reply,
        ) from error
