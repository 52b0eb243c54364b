"""Relaying a composed message over the mailbox's own SMTP server.

Replies are classified for retrying: 4xx replies, refused or dropped connections and timeouts
are transient; 5xx replies and unusable configurations are permanent. A connection lost while
the message data was being transferred is also *ambiguous*: the server may have accepted it.

Sessions are opened through the shared mail-server layer (the host guard resolves the name
once, refuses non-public addresses unless allowed, and the connection goes to the checked
address with TLS verifying the name). Logged-in sessions are kept per account (`SmtpPool`) and
reused for the next message, so a message costs one MAIL/RCPT/DATA exchange rather than a
connect, a TLS handshake and a login.
"""

import asyncio
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiosmtplib

from mailsync_shared.mail_servers.accounts import ServerLogin
from mailsync_shared.mail_servers.errors import MailServerError, failure_reason
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.mail_servers.smtp import open_smtp


@dataclass(frozen=True)
class RelayResult:
    accepted: tuple[str, ...]
    refused: dict[str, str]
    reply: str


class RelayError(Exception):
    """The message was not relayed; `permanent` says whether trying again can help."""

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool,
        ambiguous: bool = False,
        auth_refused: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.ambiguous = ambiguous
        self.auth_refused = auth_refused


def is_permanent_code(code: int) -> bool:
    return 500 <= code < 600


def reply_text(code: int, message: str) -> str:
    return f"{code} {' '.join(message.split())}"


def classify(error: BaseException, *, during_data: bool = False) -> RelayError:
    """The relay error for an exception raised while talking to the server."""
    if isinstance(error, MailServerError):
        return _classify_failure(error, during_data=during_data)
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        replies = [classify(refusal) for refusal in error.recipients]
        reason = "; ".join(r.reason for r in replies) or "every recipient was refused"
        return RelayError(reason, permanent=all(r.permanent for r in replies) and bool(replies))
    if isinstance(error, aiosmtplib.SMTPAuthenticationError):
        return RelayError(
            "login refused: " + reply_text(error.code, error.message),
            permanent=is_permanent_code(error.code),
            auth_refused=True,
        )
    if isinstance(error, aiosmtplib.SMTPResponseException):
        subject = getattr(error, "recipient", None) or getattr(error, "sender", None)
        prefix = f"{subject}: " if subject else ""
        return RelayError(
            prefix + reply_text(error.code, error.message), permanent=is_permanent_code(error.code)
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        return RelayError(f"TLS certificate not trusted: {error}", permanent=True)
    if isinstance(error, (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError)):
        return RelayError(f"connection lost: {error}", permanent=False, ambiguous=during_data)
    if isinstance(error, (aiosmtplib.SMTPConnectError, OSError, TimeoutError)):
        return RelayError(
            f"cannot reach the SMTP server: {error}", permanent=False, ambiguous=during_data
        )
    if isinstance(error, aiosmtplib.SMTPException):
        # Missing AUTH or STARTTLS support: the mailbox's settings must change first.
        return RelayError(f"SMTP server unusable: {error}", permanent=True)
    return RelayError(f"{type(error).__name__}: {error}", permanent=False, ambiguous=during_data)


def _classify_failure(error: MailServerError, *, during_data: bool) -> RelayError:
    """A failure of the shared mail-server layer (host guard, connect, TLS, login)."""
    code = _reply_code(error.reason)
    permanent_reply = code is None or is_permanent_code(code)
    if error.kind == "auth_refused":
        return RelayError(
            f"login refused: {error.reason}", permanent=permanent_reply, auth_refused=True
        )
    if error.kind in ("host_refused", "tls"):
        return RelayError(failure_reason(error), permanent=True)
    if error.kind == "protocol":
        # Missing AUTH or STARTTLS support, or a 5xx: the mailbox's settings must change first.
        return RelayError(f"SMTP server unusable: {error.reason}", permanent=permanent_reply)
    return RelayError(
        f"cannot reach the SMTP server: {error.reason}", permanent=False, ambiguous=during_data
    )


def _reply_code(text: str) -> int | None:
    head = text[:3]
    return int(head) if head.isdigit() and text[3:4] in ("", " ", "-") else None


@dataclass
class _Idle:
    client: aiosmtplib.SMTP
    since: float


@dataclass
class _Session:
    client: aiosmtplib.SMTP
    reused: bool


class SmtpPool:
    """Up to `size` logged-in sessions per account, reused between messages.

    A session is handed back only after the server accepted a message; any error closes it.
    A reused session starts the next transaction at once; if the server closed it meanwhile,
    MAIL FROM fails before anything was sent and the message goes over a fresh session.
    Sessions idle longer than `idle_seconds` are closed.
    """

    def __init__(
        self, *, size: int, timeout: float, guard: HostGuard, idle_seconds: float = 30.0
    ) -> None:
        self._size = size
        self._guard = guard
        self._timeout = timeout
        self._idle_seconds = idle_seconds
        self._idle: dict[ServerLogin, list[_Idle]] = {}
        self._slots: dict[ServerLogin, asyncio.Semaphore] = {}

    async def relay(
        self,
        account: ServerLogin,
        *,
        envelope_from: str,
        recipients: tuple[str, ...],
        data: bytes,
        before_data: Callable[[], Awaitable[None]] | None = None,
    ) -> RelayResult:
        """Submit `data` to `recipients`; raise `RelayError` unless at least one was accepted.

        `before_data` runs after the recipients were accepted and before DATA: from then on the
        server may hold the message even if no reply comes back.
        """
        async with self._session(account) as session:
            accepted: list[str] = []
            refused: dict[str, str] = {}
            during_data = False
            try:
                client = await self._mail_from(account, session, envelope_from)
                refusals: list[aiosmtplib.SMTPRecipientRefused] = []
                for recipient in recipients:
                    try:
                        await client.rcpt(recipient)
                    except aiosmtplib.SMTPRecipientRefused as refusal:
                        refusals.append(refusal)
                        refused[recipient] = reply_text(refusal.code, refusal.message)
                    else:
                        accepted.append(recipient)
                if not accepted:
                    raise aiosmtplib.SMTPRecipientsRefused(refusals)
                if before_data is not None:
                    await before_data()
                during_data = True
                response = await client.data(data)
            except RelayError:
                raise  # a new session could not be had: nothing to close
            except Exception as error:
                session.client.close()
                raise classify(error, during_data=during_data) from error
        return RelayResult(
            accepted=tuple(accepted),
            refused=refused,
            reply=reply_text(response.code, response.message),
        )

    async def _mail_from(
        self, account: ServerLogin, session: "_Session", envelope_from: str
    ) -> aiosmtplib.SMTP:
        """Start the transaction; on a kept session that fails (the server may have closed it
        while it was idle: nothing was sent yet), once more on a new one. The session used."""
        if session.reused:
            try:
                await session.client.mail(envelope_from)
            except (aiosmtplib.SMTPException, OSError):
                session.client.close()
                session.client = await self._connect(account)
            else:
                return session.client
        await session.client.mail(envelope_from)
        return session.client

    @contextlib.asynccontextmanager
    async def _session(self, account: ServerLogin) -> AsyncIterator["_Session"]:
        slots = self._slots.setdefault(account, asyncio.Semaphore(self._size))
        async with slots:
            kept = self._reused(account)
            session = _Session(kept or await self._connect(account), reused=kept is not None)
            yield session
            if session.client.is_connected:
                self._idle.setdefault(account, []).append(_Idle(session.client, time.monotonic()))

    def _reused(self, account: ServerLogin) -> aiosmtplib.SMTP | None:
        """A kept session, as the server left it after its last message: that reply to the
        data ended the transaction, so no RSET is needed before the next."""
        self._close_expired()
        idle = self._idle.get(account, [])
        while idle:
            client = idle.pop().client
            if client.is_connected:
                return client
            client.close()
        return None

    async def _connect(self, account: ServerLogin) -> aiosmtplib.SMTP:
        """A logged-in session on the address the host guard checked (TLS verifies the name)."""
        try:
            return await open_smtp(
                account.host,
                account.port,
                account.security,
                account.login,
                guard=self._guard,
                timeout=self._timeout,
            )
        except MailServerError as error:
            raise classify(error) from error

    def _close_expired(self) -> None:
        oldest = time.monotonic() - self._idle_seconds
        for account, idle in list(self._idle.items()):
            for item in [item for item in idle if item.since < oldest]:
                idle.remove(item)
                item.client.close()
            if not idle:
                del self._idle[account]
                slots = self._slots.get(account)
                if slots is not None and not slots.locked() and len(self._slots) > 1000:
                    del self._slots[account]

    async def close(self) -> None:
        """End every idle session."""
        idle, self._idle = self._idle, {}
        for items in idle.values():
            for item in items:
                await _quit(item.client)


async def _quit(client: aiosmtplib.SMTP) -> None:
    """End the session politely; the message is already accepted, so failures do not matter."""
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
