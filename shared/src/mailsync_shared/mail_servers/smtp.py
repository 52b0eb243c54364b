"""SMTP sessions through the host guard: connected to the checked address (TLS verifying the
name), logged in with a password or an OAuth access token, failures in the shared vocabulary."""

import ssl

import aiosmtplib

from mailsync_shared.mail_servers.accounts import Login
from mailsync_shared.mail_servers.errors import (
    AuthRefusedError,
    MailServerError,
    ProtocolError,
    ServerTimeoutError,
    TlsError,
    UnreachableError,
)
from mailsync_shared.mail_servers.hosts import HostGuard, open_socket
from mailsync_shared.storage.documents import Security

EHLO_NAME = "mailsync"


def reply_text(code: int, message: str) -> str:
    return f"{code} {' '.join(message.split())}"


def smtp_failure(error: BaseException) -> MailServerError:
    """The shared kind of failure for an error of the SMTP client."""
    if isinstance(error, MailServerError):
        return error
    if isinstance(error, aiosmtplib.SMTPAuthenticationError):
        return AuthRefusedError(reply_text(error.code, error.message))
    if isinstance(error, ssl.SSLError):
        return TlsError(str(error))
    if isinstance(error, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return ServerTimeoutError(str(error) or "the SMTP server did not answer in time")
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return ProtocolError(reply_text(error.code, error.message))
    if isinstance(error, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected):
        return UnreachableError(str(error))
    if isinstance(error, OSError):
        return UnreachableError(str(error))
    return ProtocolError(f"{type(error).__name__}: {error}")


async def open_smtp(
    host: str,
    port: int,
    security: Security,
    login: Login | None,
    *,
    guard: HostGuard,
    timeout: float,  # noqa: ASYNC109 - the client's command timeout
) -> aiosmtplib.SMTP:
    """A session after EHLO (and STARTTLS or TLS as asked), logged in when `login` is given;
    `MailServerError` of the shared kinds otherwise."""
    checked = await guard.check(host, port)
    sock = await open_socket(checked, timeout=timeout)
    client = aiosmtplib.SMTP(
        hostname=host,
        sock=sock,
        use_tls=security == "tls",
        start_tls=security == "starttls",
        timeout=timeout,
        tls_context=ssl.create_default_context() if security != "none" else None,
        local_hostname=EHLO_NAME,
    )
    try:
        await client.connect()
        if login is not None and login.access_token is not None:
            await client.auth_xoauth2(login.username, login.access_token)
        elif login is not None:
            await client.login(login.username, login.password or "")
    except BaseException as error:
        client.close()
        sock.close()
        if isinstance(error, Exception):
            raise smtp_failure(error) from error
        raise
    return client
