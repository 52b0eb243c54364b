"""Connecting a mailbox account that logs in with XOAUTH2 instead of a password.

Before the account is stored, the refresh token is exchanged for an access token at the
provider's token endpoint (which must be a public host, like the mail servers), and that token
is used to log in over XOAUTH2, so a wrong grant is reported at once with the provider's answer.
"""

from urllib.parse import urlsplit

from mailsync_api.mail_servers import ServerKind, check_login
from mailsync_api.problems import ProblemError, invalid
from mailsync_api.schemas.mailboxes import ServerIn
from mailsync_api.settings import Settings
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.mail_servers.accounts import Login
from mailsync_shared.mail_servers.errors import MailServerError
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.oauth import OAuthError, OAuthGrant, refresh_access_token
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


async def check_xoauth2_server(kind: ServerKind, server: ServerIn, settings: Settings) -> None:
    """Refresh an access token and log in with it; a 422 problem with the answer otherwise."""
    grant = grant_of(server)
    guard = HostGuard(allow_private=settings.allow_private_hosts)
    endpoint = urlsplit(grant.token_endpoint)
    if not settings.allow_private_hosts and endpoint.scheme != "https":
        raise invalid(f"body.{kind}.token_endpoint", "must be an https URL")
    try:
        await guard.check(endpoint.hostname or "", endpoint.port or 443)
    except MailServerError as error:
        raise invalid(f"body.{kind}.token_endpoint", error.reason) from None
    try:
        token = await refresh_access_token(grant, guard=guard, timeout=settings.mail_server_timeout)
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
    await check_login(
        kind,
        server.host,
        server.port,
        server.security,
        Login(server.username, access_token=token.value),
        guard=guard,
        timeout=settings.mail_server_timeout,
    )
