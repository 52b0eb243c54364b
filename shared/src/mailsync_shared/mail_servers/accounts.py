"""A mailbox account's credentials: a password, or an OAuth access token that is refreshed
once and retried when the server refuses it (it may have been revoked before it expired)."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mailsync_shared.crypto import CredentialCipher, CredentialError
from mailsync_shared.mail_servers.errors import AuthRefusedError
from mailsync_shared.oauth import TokenCache, grant_of
from mailsync_shared.storage.documents import Security, ServerAccount

T = TypeVar("T")


@dataclass(frozen=True)
class Login:
    """How to authenticate: a password (LOGIN), or an OAuth access token (XOAUTH2)."""

    username: str
    password: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ServerLogin:
    """A mail server (IMAP or SMTP) and how to log in to it. Hashable: sessions are kept per
    server login, so a changed password or token gets sessions of its own."""

    host: str
    port: int
    security: Security
    login: Login


class Credentials:
    def __init__(self, cipher: CredentialCipher, tokens: TokenCache) -> None:
        self._cipher = cipher
        self._tokens = tokens

    async def login(self, account: ServerAccount) -> Login:
        """The account's password, or a (refreshed) access token; `CredentialError` when
        none can be had, `OAuthError` when the token endpoint refuses."""
        if account.auth == "xoauth2":
            grant = grant_of(account, self._cipher)
            return Login(account.username, access_token=await self._tokens.access_token(grant))
        if account.secret_encrypted is None:
            raise CredentialError("no credential stored")
        return Login(account.username, password=self._cipher.decrypt(account.secret_encrypted))

    async def attempt(self, account: ServerAccount, action: Callable[[Login], Awaitable[T]]) -> T:
        """Run `action` with the account's login; a refused OAuth token is refreshed once."""
        login = await self.login(account)
        try:
            return await action(login)
        except AuthRefusedError:
            if login.access_token is None:
                raise
            self._tokens.invalidate(grant_of(account, self._cipher))
            return await action(await self.login(account))
