"""OAuth 2.0 access tokens for XOAUTH2 (SMTP and IMAP), refreshed from a stored refresh token.

A mailbox account with `auth == "xoauth2"` keeps its refresh token encrypted in
`secret_encrypted`, with the provider's token endpoint and client id beside it. Access tokens
live only in memory (`TokenCache`), are refreshed shortly before they expire, and are dropped
when a server refuses one, so the next attempt refreshes.
"""

import asyncio
import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from mailsync_shared.clock import utcnow
from mailsync_shared.crypto import CredentialCipher, CredentialError
from mailsync_shared.mail_servers.errors import MailServerError
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.storage.documents import ServerAccount

EXPIRY_MARGIN = timedelta(seconds=60)
DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_LIFETIME = timedelta(minutes=30)


class OAuthError(Exception):
    """No access token; `permanent` when the grant or the client is refused (re-consent)."""

    def __init__(self, reason: str, *, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class OAuthGrant:
    """What a token refresh needs: where, as which client, with which refresh token."""

    token_endpoint: str
    client_id: str
    refresh_token: str = field(repr=False)
    client_secret: str | None = field(default=None, repr=False)
    scope: str | None = None

    @property
    def cache_key(self) -> str:
        material = "\0".join([self.token_endpoint, self.client_id, self.refresh_token])
        return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True)
class AccessToken:
    value: str = field(repr=False)
    expires_at: datetime


def grant_of(account: ServerAccount, cipher: CredentialCipher) -> OAuthGrant:
    """The grant stored on an `xoauth2` account, decrypted."""
    if not account.token_endpoint or not account.client_id:
        raise OAuthError("the account has no token endpoint or client id", permanent=True)
    if not account.secret_encrypted:
        raise OAuthError("the account has no stored refresh token", permanent=True)
    try:
        refresh_token = cipher.decrypt(account.secret_encrypted)
        client_secret = (
            cipher.decrypt(account.client_secret_encrypted)
            if account.client_secret_encrypted
            else None
        )
    except CredentialError as error:
        raise OAuthError(str(error), permanent=True) from error
    return OAuthGrant(
        token_endpoint=account.token_endpoint,
        client_id=account.client_id,
        refresh_token=refresh_token,
        client_secret=client_secret,
        scope=account.scope,
    )


async def _post_form(
    url: str,
    form: dict[str, str],
    *,
    guard: HostGuard | None,
    client: httpx.AsyncClient | None,
    timeout: float,  # noqa: ASYNC109 - passed to the HTTP client per request
) -> httpx.Response:
    """POST the form; with a guard, to the address it checked (the name in `Host` and TLS).

    The endpoint is checked on every refresh, not only when the account was connected: a
    name that resolves elsewhere now must not reach the deployment's own network.
    """
    target = httpx.URL(url)
    headers: dict[str, str] = {}
    extensions: dict[str, str] = {}
    if guard is not None:
        if target.scheme != "https" and not guard.allow_private:
            raise OAuthError("the token endpoint must be an https URL", permanent=True)
        try:
            checked = await guard.check(target.host, target.port or DEFAULT_PORTS[target.scheme])
        except MailServerError as error:
            raise OAuthError(f"token endpoint not used: {error.reason}", permanent=False) from None
        headers["host"] = target.netloc.decode("ascii")
        extensions["sni_hostname"] = target.host
        target = target.copy_with(host=checked.addresses[0])
    if client is None:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as own:
            return await own.post(target, data=form, headers=headers, extensions=extensions)
    return await client.post(
        target, data=form, headers=headers, extensions=extensions, timeout=timeout
    )


async def refresh_access_token(
    grant: OAuthGrant,
    *,
    client: httpx.AsyncClient | None = None,
    guard: HostGuard | None = None,
    timeout: float = 30.0,  # noqa: ASYNC109 - passed to the HTTP client per request
) -> AccessToken:
    """A fresh access token from the token endpoint (RFC 6749 6, `grant_type=refresh_token`),
    reached through the host guard when one is given."""
    form = {
        "grant_type": "refresh_token",
        "refresh_token": grant.refresh_token,
        "client_id": grant.client_id,
    }
    if grant.client_secret:
        form["client_secret"] = grant.client_secret
    if grant.scope:
        form["scope"] = grant.scope
    try:
        response = await _post_form(
            grant.token_endpoint, form, guard=guard, client=client, timeout=timeout
        )
    except httpx.HTTPError as error:
        raise OAuthError(f"token endpoint unreachable: {error}", permanent=False) from error
    if response.status_code >= 500 or response.status_code == 429:
        raise OAuthError(f"token endpoint answered {response.status_code}", permanent=False)
    try:
        body = response.json()
    except ValueError as error:
        raise OAuthError("token endpoint answered without JSON", permanent=False) from error
    if response.status_code != 200 or not isinstance(body, dict):
        detail = body.get("error", "") if isinstance(body, dict) else ""
        raise OAuthError(
            f"token refresh refused ({response.status_code} {detail})".strip(), permanent=True
        )
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise OAuthError("token endpoint answered without an access token", permanent=False)
    lifetime = body.get("expires_in")
    seconds = (
        float(lifetime) if isinstance(lifetime, int | float) else DEFAULT_LIFETIME.total_seconds()
    )
    return AccessToken(value=token, expires_at=utcnow() + timedelta(seconds=seconds))


def xoauth2_string(username: str, access_token: str) -> str:
    """The base64 XOAUTH2 initial client response for `username` (SMTP AUTH, IMAP)."""
    raw = f"user={username}\x01auth=Bearer {access_token}\x01\x01"
    return base64.b64encode(raw.encode()).decode()


class TokenCache:
    """Access tokens per grant, shared by the tasks of one process; one refresh at a time."""

    def __init__(self, *, timeout: float = 30.0, guard: HostGuard | None = None) -> None:
        self._tokens: dict[str, AccessToken] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._timeout = timeout
        self._guard = guard

    async def access_token(self, grant: OAuthGrant) -> str:
        key = grant.cache_key
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(key)
            if cached is not None and cached.expires_at - EXPIRY_MARGIN > utcnow():
                return cached.value
            token = await refresh_access_token(grant, guard=self._guard, timeout=self._timeout)
            self._tokens[key] = token
            return token.value

    def invalidate(self, grant: OAuthGrant) -> None:
        """Forget the token a server refused, so the next use refreshes it."""
        self._tokens.pop(grant.cache_key, None)
