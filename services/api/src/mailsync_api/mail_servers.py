"""Checking a user's mail servers before their mailbox is saved.

Through the shared mail-server layer, as ingest and send reach the same servers: the host
guard resolves the name once and refuses non-public addresses (unless the operator allows
them), the login is tried on the checked address (TLS verifying the name), and a failure is
one of the shared kinds. A typo is so reported at once with the server's own answer instead of
surfacing later as a failed sync.
"""

import contextlib
from typing import Literal

import aiosmtplib

from mailsync_api.problems import ProblemError, invalid
from mailsync_shared.mail_servers.accounts import Login
from mailsync_shared.mail_servers.errors import FailureKind, HostRefusedError, MailServerError
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.mail_servers.imap import open_imap
from mailsync_shared.mail_servers.smtp import open_smtp
from mailsync_shared.storage.documents import Security

ServerKind = Literal["imap", "smtp"]

# The problem type (`mail-server-<slug>`) for each kind of failure; clients match on these.
PROBLEM_SLUGS: dict[FailureKind, str] = {
    "auth_refused": "login-refused",
    "host_refused": "host-refused",
    "unreachable": "unreachable",
    "tls": "tls-failed",
    "timeout": "timed-out",
    "protocol": "protocol-error",
}
_WHAT: dict[FailureKind, str] = {
    "auth_refused": "refused the login",
    "host_refused": "is not allowed",
    "unreachable": "could not be reached",
    "tls": "failed the TLS handshake",
    "timeout": "did not answer in time",
    "protocol": "answered in a way that cannot be used",
}


async def verify_login(
    server: ServerKind,
    host: str,
    port: int,
    security: Security,
    login: Login,
    *,
    guard: HostGuard,
    timeout: float,  # noqa: ASYNC109 - the sessions' answer timeout
) -> None:
    """Log in to the server and out again; `MailServerError` (of the shared kinds) otherwise."""
    if server == "imap":
        session = await open_imap(host, port, security, login, guard=guard, timeout=timeout)
        await session.logout(timeout=timeout)
        return
    client = await open_smtp(host, port, security, login, guard=guard, timeout=timeout)
    with contextlib.suppress(aiosmtplib.SMTPException, OSError):
        await client.quit()
    client.close()


async def check_login(
    server: ServerKind,
    host: str,
    port: int,
    security: Security,
    login: Login,
    *,
    guard: HostGuard,
    timeout: float,  # noqa: ASYNC109 - the sessions' answer timeout
) -> None:
    """`verify_login`, a failure as the api's answer: a refused host is an invalid field, any
    other failure a 422 problem with the server's answer (secrets blanked out)."""
    try:
        await verify_login(server, host, port, security, login, guard=guard, timeout=timeout)
    except HostRefusedError as error:
        raise invalid(f"body.{server}.host", error.reason) from None
    except MailServerError as error:
        reply = error.reason
        for secret in (login.password, login.access_token):
            if secret:  # a server that echoes what it was sent must not make us echo it
                reply = reply.replace(secret, "***")
        raise ProblemError(
            422,
            f"the {server.upper()} server {host}:{port} {_WHAT[error.kind]}: {reply}",
            kind=f"mail-server-{PROBLEM_SLUGS[error.kind]}",
            title="Mail server check failed",
            server=server,
            reply=reply,
        ) from None
