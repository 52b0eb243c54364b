"""Checking a user's mail servers before their mailbox is saved.

Hosts are checked against private, loopback and link-local ranges (unless the operator allows
them), then the IMAP and SMTP logins are tried, so a typo is reported at once with the
server's own answer instead of surfacing later as a failed sync.
"""

import asyncio
import contextlib
import imaplib
import ipaddress
import smtplib
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from mailsync_shared.storage.documents import Security

ServerKind = Literal["imap", "smtp"]
_EHLO_NAME = "mailsync"


@dataclass(frozen=True)
class Login:
    host: str
    port: int
    security: Security
    username: str
    password: str


class MailServerError(Exception):
    """The server could not be reached, or refused the login."""

    def __init__(self, server: ServerKind, kind: str, reply: str) -> None:
        super().__init__(f"{server}: {reply}")
        self.server = server
        self.kind = kind
        self.reply = reply


class HostNotAllowedError(Exception):
    """The host resolves to an address users may not point Mailsync at."""


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def resolve(host: str, port: int) -> list[str]:
    literal = host.strip("[]")
    with contextlib.suppress(ValueError):
        return [str(ipaddress.ip_address(literal))]
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise HostNotAllowedError(f"{host} cannot be resolved ({error.strerror})") from error
    return sorted({str(info[4][0]) for info in infos})


async def require_public_host(host: str, port: int) -> None:
    """Refuse hosts with any address in a private, loopback, link-local or reserved range."""
    addresses = await resolve(host, port)
    private = [address for address in addresses if not is_public_address(address)]
    if private or not addresses:
        raise HostNotAllowedError(f"{host} resolves to a non-public address ({', '.join(private)})")


def reply_text(error: BaseException) -> str:
    parts = []
    for arg in error.args:
        parts.append(arg.decode(errors="replace") if isinstance(arg, bytes) else str(arg))
    return " ".join(part for part in parts if part).strip() or type(error).__name__


def imap_client(host: str, port: int, security: Security, timeout: float) -> imaplib.IMAP4:
    """A connected IMAP client, over TLS or STARTTLS as asked; `MailServerError` otherwise."""
    context = ssl.create_default_context()
    try:
        if security == "tls":
            return imaplib.IMAP4_SSL(host, port, ssl_context=context, timeout=timeout)
        client = imaplib.IMAP4(host, port, timeout=timeout)
        if security == "starttls":
            client.starttls(context)
        return client
    except (OSError, imaplib.IMAP4.error) as error:
        raise MailServerError("imap", "unreachable", reply_text(error)) from error


def smtp_client(host: str, port: int, security: Security, timeout: float) -> smtplib.SMTP:
    """A connected SMTP client after EHLO, over TLS or STARTTLS as asked."""
    context = ssl.create_default_context()
    try:
        if security == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                host, port, local_hostname=_EHLO_NAME, timeout=timeout, context=context
            )
        else:
            client = smtplib.SMTP(host, port, local_hostname=_EHLO_NAME, timeout=timeout)
            if security == "starttls":
                client.starttls(context=context)
        client.ehlo()
    except (OSError, smtplib.SMTPException) as error:
        raise MailServerError("smtp", "unreachable", reply_text(error)) from error
    return client


@contextlib.contextmanager
def imap_login_answers(client: imaplib.IMAP4) -> Iterator[None]:
    """A refused IMAP login or a dropped connection as `MailServerError`; logs out after."""
    try:
        yield
    except imaplib.IMAP4.error as error:
        raise MailServerError("imap", "login-refused", reply_text(error)) from error
    except OSError as error:
        raise MailServerError("imap", "unreachable", reply_text(error)) from error
    finally:
        with contextlib.suppress(Exception):
            client.logout()


@contextlib.contextmanager
def smtp_login_answers(client: smtplib.SMTP) -> Iterator[None]:
    """A refused SMTP login (with the server's code) or a dropped connection as
    `MailServerError`; quits after."""
    try:
        yield
    except smtplib.SMTPResponseException as error:
        raw = error.smtp_error
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        raise MailServerError("smtp", "login-refused", f"{error.smtp_code} {text}") from error
    except smtplib.SMTPException as error:
        raise MailServerError("smtp", "login-refused", reply_text(error)) from error
    except OSError as error:
        raise MailServerError("smtp", "unreachable", reply_text(error)) from error
    finally:
        with contextlib.suppress(Exception):
            client.quit()


def _imap_login(login: Login, timeout: float) -> None:
    client = imap_client(login.host, login.port, login.security, timeout)
    with imap_login_answers(client):
        try:
            client.login(login.username, login.password)
        except UnicodeEncodeError as error:
            raise MailServerError(
                "imap", "login-refused", "IMAP LOGIN accepts only ASCII user names and passwords"
            ) from error


def _smtp_login(login: Login, timeout: float) -> None:
    client = smtp_client(login.host, login.port, login.security, timeout)
    with smtp_login_answers(client):
        client.login(login.username, login.password)


async def verify_login(server: ServerKind, login: Login, socket_timeout: float) -> None:
    """Log in to the server and out again; raises `MailServerError` with the server's answer."""
    check = _imap_login if server == "imap" else _smtp_login
    try:
        await asyncio.to_thread(check, login, socket_timeout)
    except MailServerError as error:
        # A server that echoes what it was sent must not make us echo the password.
        reply = error.reply.replace(login.password, "***") if login.password else error.reply
        raise MailServerError(error.server, error.kind, reply) from error.__cause__
