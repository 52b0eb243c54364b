"""SMTP submission server for local development: AUTH required, delivery into Dovecot over LMTP.

Every message accepted here is handed, byte for byte, to Dovecot's LMTP listener, so what the
send service submits lands in each recipient's INBOX. Accounts live in Dovecot's passwd-file
(see :mod:`mailsync_devmail.accounts`); it is also the list of deliverable recipients: any other
recipient is refused with 550 at RCPT. There is no relaying to the outside world.

AUTH PLAIN and LOGIN work over plaintext: the server is meant for loopback only. An
authenticated user may use any envelope sender or From header.

Run::

    python -m mailsync_devmail.smtp_server --listen 127.0.0.1:10587 \
        --lmtp 127.0.0.1:10024 --users .infra/dovecot/users
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import re
import signal
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from mailsync_devmail.accounts import UsersFile

__all__ = [
    "DevMailHandler",
    "LmtpDeliveryError",
    "PasswdFileAuthenticator",
    "Reply",
    "lmtp_deliver",
    "main",
    "serve",
]

log = logging.getLogger("mailsync_devmail.smtp")

DEFAULT_DATA_SIZE_LIMIT = 50 * 1024 * 1024
LMTP_TIMEOUT = 120.0
_DOT_AT_LINE_START = re.compile(rb"(?m)^\.")
_NOISY_AIOSMTPD_WARNING = "Requiring AUTH while not requiring TLS"


@dataclass(frozen=True)
class Reply:
    """One (possibly multi-line) SMTP/LMTP reply."""

    code: int
    text: str

    @property
    def oneline(self) -> str:
        return " ".join(self.text.split("\n"))

    def __str__(self) -> str:
        return f"{self.code} {self.oneline}"


class LmtpDeliveryError(Exception):
    """The LMTP session failed before per-recipient results were known."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


def _hostport(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


async def _read_reply(reader: asyncio.StreamReader) -> Reply:
    lines: list[str] = []
    while True:
        raw = await reader.readline()
        if not raw:
            raise LmtpDeliveryError(Reply(451, "4.4.2 LMTP server closed the connection"))
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if len(line) < 3 or not line[:3].isdigit():
            raise LmtpDeliveryError(Reply(451, f"4.5.0 Malformed LMTP reply: {line!r}"))
        lines.append(line[4:])
        if line[3:4] != "-":
            return Reply(int(line[:3]), "\n".join(lines))


def _path(address: str) -> str:
    return "<>" if address in ("", "<>") else f"<{address}>"


async def lmtp_deliver(
    host: str,
    port: int,
    *,
    mail_from: str,
    recipients: Sequence[str],
    data: bytes,
    smtputf8: bool = False,
    eight_bit: bool = False,
    client_name: str = "localhost",
) -> dict[str, Reply]:
    """Deliver ``data`` (unstuffed message bytes, CRLF lines) to ``recipients`` over LMTP.

    Returns the final reply for every recipient: the RCPT reply if it was refused, else its
    own reply to DATA (LMTP answers DATA once per accepted recipient). Raises
    :class:`LmtpDeliveryError` when the session fails as a whole, TimeoutError after
    ``LMTP_TIMEOUT`` seconds (wrap the call in ``asyncio.timeout`` for another bound).
    """
    async with asyncio.timeout(LMTP_TIMEOUT):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            return await _lmtp_transaction(
                reader,
                writer,
                mail_from=mail_from,
                recipients=recipients,
                data=data,
                smtputf8=smtputf8,
                eight_bit=eight_bit,
                client_name=client_name,
            )
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def _lmtp_transaction(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    mail_from: str,
    recipients: Sequence[str],
    data: bytes,
    smtputf8: bool,
    eight_bit: bool,
    client_name: str,
) -> dict[str, Reply]:
    async def command(line: str) -> Reply:
        writer.write(line.encode("utf-8") + b"\r\n")
        await writer.drain()
        return await _read_reply(reader)

    def expect(reply: Reply, code: int) -> None:
        if reply.code != code:
            raise LmtpDeliveryError(reply)

    expect(await _read_reply(reader), 220)
    lhlo = await command(f"LHLO {client_name}")
    expect(lhlo, 250)
    extensions = {line.split(" ", 1)[0].upper() for line in lhlo.text.splitlines()}

    params = []
    if eight_bit and "8BITMIME" in extensions:
        params.append("BODY=8BITMIME")
    if smtputf8 and "SMTPUTF8" in extensions:
        params.append("SMTPUTF8")
    expect(await command(" ".join([f"MAIL FROM:{_path(mail_from)}", *params])), 250)

    results: dict[str, Reply] = {}
    accepted: list[str] = []
    for rcpt in recipients:
        reply = await command(f"RCPT TO:{_path(rcpt)}")
        results[rcpt] = reply
        if reply.code == 250:
            accepted.append(rcpt)
    if not accepted:
        with contextlib.suppress(LmtpDeliveryError, OSError):
            await command("QUIT")
        return results

    expect(await command("DATA"), 354)
    payload = _DOT_AT_LINE_START.sub(b"..", data)
    if payload and not payload.endswith(b"\r\n"):
        payload += b"\r\n"
    writer.write(payload + b".\r\n")
    await writer.drain()
    for rcpt in accepted:
        results[rcpt] = await _read_reply(reader)
    with contextlib.suppress(LmtpDeliveryError, OSError):
        await command("QUIT")
    return results


class PasswdFileAuthenticator:
    """aiosmtpd authenticator checking AUTH PLAIN/LOGIN against the Dovecot passwd-file."""

    def __init__(self, users: UsersFile) -> None:
        self.users = users

    def __call__(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        if mechanism in ("PLAIN", "LOGIN") and isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode("utf-8", "replace")
            password = auth_data.password.decode("utf-8", "replace")
            if self.users.check_password(login, password):
                log.info("auth ok user=%s peer=%s", login, session.peer)
                return AuthResult(success=True, auth_data=login.strip().lower())
            log.info("auth failed user=%s peer=%s", login, session.peer)
        # handled=False: aiosmtpd answers "535 5.7.8 Authentication credentials invalid".
        return AuthResult(success=False, handled=False)


class DevMailHandler:
    """aiosmtpd handler: local recipients only, every message forwarded to Dovecot LMTP."""

    def __init__(self, users: UsersFile, lmtp_host: str, lmtp_port: int, hostname: str) -> None:
        self.users = users
        self.lmtp_host = lmtp_host
        self.lmtp_port = lmtp_port
        self.hostname = hostname

    async def handle_RCPT(  # noqa: N802 (aiosmtpd hook name)
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.users.resolve(address) is None:
            log.info("rcpt refused %s (no such account)", address)
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 (aiosmtpd hook name)
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        data = envelope.original_content or b""
        sender = envelope.mail_from or "<>"
        try:
            results = await lmtp_deliver(
                self.lmtp_host,
                self.lmtp_port,
                mail_from=sender,
                recipients=envelope.rcpt_tos,
                data=data,
                smtputf8=envelope.smtp_utf8,
                eight_bit="BODY=8BITMIME" in envelope.mail_options,
                client_name=self.hostname,
            )
        except (OSError, TimeoutError) as exc:
            log.error("lmtp unreachable at %s:%d: %s", self.lmtp_host, self.lmtp_port, exc)
            return "451 4.3.0 Local delivery temporarily unavailable, try again later"
        except LmtpDeliveryError as exc:
            log.error("lmtp session failed: %s", exc.reply)
            if exc.reply.code >= 500:
                return f"554 5.3.0 Local delivery failed: {exc.reply.oneline}"
            return f"451 4.3.0 Local delivery failed: {exc.reply.oneline}"

        failed = {rcpt: reply for rcpt, reply in results.items() if reply.code != 250}
        delivered = [rcpt for rcpt in results if rcpt not in failed]
        user = session.auth_data if isinstance(session.auth_data, str) else "?"
        log.info(
            "message user=%s from=%s to=%s size=%d delivered=%d failed=%s",
            user,
            sender,
            ",".join(envelope.rcpt_tos),
            len(data),
            len(delivered),
            {rcpt: str(reply) for rcpt, reply in failed.items()} or "none",
        )
        if delivered:
            # One SMTP reply must cover every recipient: partial failures are only logged.
            return "250 2.0.0 OK: delivered"
        first = next(iter(failed.values()))
        return str(first)


class _DropAiosmtpdNoise(logging.Filter):
    """aiosmtpd warns on every connection about settings that are deliberate here."""

    _NOISE = ("auth_require_tls == False", "login_data is deprecated")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(noise in message for noise in self._NOISE)


async def serve(
    listen: tuple[str, int],
    lmtp: tuple[str, int],
    users_file: Path,
    *,
    hostname: str = "mailsync-devmail.localhost",
    data_size_limit: int = DEFAULT_DATA_SIZE_LIMIT,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until ``stop`` is set (or forever)."""
    users = UsersFile(users_file)
    handler = DevMailHandler(users, lmtp[0], lmtp[1], hostname)
    authenticator = PasswdFileAuthenticator(users)
    loop = asyncio.get_running_loop()
    warnings.filterwarnings("ignore", message=_NOISY_AIOSMTPD_WARNING)
    logging.getLogger("mail.log").addFilter(_DropAiosmtpdNoise())

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname=hostname,
            ident="Mailsync devmail ESMTP",
            data_size_limit=data_size_limit,
            enable_SMTPUTF8=True,
            decode_data=False,
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=False,
            loop=loop,
        )

    server = await loop.create_server(factory, host=listen[0], port=listen[1], reuse_address=True)
    log.info(
        "smtp listening on %s:%d, delivering over lmtp to %s:%d, accounts in %s",
        listen[0],
        listen[1],
        lmtp[0],
        lmtp[1],
        users_file,
    )
    if ready is not None:
        ready.set()
    try:
        if stop is None:
            await asyncio.Future()
        else:
            await stop.wait()
    finally:
        server.close()
        log.info("smtp server stopped")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mailsync_devmail.smtp_server",
        description="Authenticating SMTP submission server delivering to Dovecot over LMTP.",
    )
    parser.add_argument("--listen", type=_hostport, default=("127.0.0.1", 10587))
    parser.add_argument("--lmtp", type=_hostport, default=("127.0.0.1", 10024))
    parser.add_argument("--users", type=Path, required=True, help="Dovecot passwd-file")
    parser.add_argument("--hostname", default="mailsync-devmail.localhost")
    parser.add_argument("--max-size", type=int, default=DEFAULT_DATA_SIZE_LIMIT)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every SMTP command")
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    logging.getLogger("mail.log").setLevel(logging.DEBUG if args.verbose else logging.WARNING)

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await serve(
            args.listen,
            args.lmtp,
            args.users,
            hostname=args.hostname,
            data_size_limit=args.max_size,
            stop=stop,
        )

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
