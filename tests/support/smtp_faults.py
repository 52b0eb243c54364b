"""An SMTP server for tests that answers as told: 421, 451, 550, a dropped or stalled DATA.

It speaks real SMTP (aiosmtpd) on a free loopback port, requires AUTH (PLAIN/LOGIN with any
password, or XOAUTH2 with a token from `tokens`), and records every message it accepted. An
accepted message is delivered into Dovecot over LMTP, so the recipient's mailbox holds it; with
`files_sent` it is also appended to the sender's Sent folder over IMAP, as Gmail does.

Replies are scripted per attempt: `rcpt_replies[address]` and `data_replies` are lists consumed
one entry per RCPT / DATA; when a list runs out the server accepts. Besides SMTP replies such as
"451 4.3.0 Try again later", a DATA entry may be one of:

- `drop`: close the connection after the data arrived, without accepting it;
- `accept-then-drop`: accept (deliver) the message, then close without replying;
- `accept-then-stall`: accept (deliver) it, then wait `stall_seconds` before replying 250.
"""

import asyncio
import base64
import threading
import warnings
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session
from imapclient import IMAPClient

from mailsync_devmail.smtp_server import lmtp_deliver
from tests.support.infra import Infra
from tests.support.ports import free_port


@dataclass(frozen=True)
class Accepted:
    envelope_from: str
    recipients: tuple[str, ...]
    data: bytes
    auth_mechanism: str

    @property
    def message_id(self) -> str:
        return str(BytesHeaderParser().parsebytes(self.data)["Message-ID"] or "")


@dataclass
class FaultPlan:
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)
    stall_seconds: float = 30.0


def _accept_any_password(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    return AuthResult(success=True)


def _hang_up(server: SMTP) -> None:
    if server.transport is not None:
        server.transport.close()


class _Handler:
    def __init__(self, owner: "FaultySmtpServer") -> None:
        self._owner = owner

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        """XOAUTH2 (aiosmtpd calls `auth_<MECHANISM>` handlers): a known bearer token only."""
        self._owner.xoauth2_attempts += 1
        if len(args) < 2:  # args: the mechanism, then the initial response
            return AuthResult(success=False, handled=False)
        try:
            decoded = base64.b64decode(args[1]).decode()
        except ValueError:
            return AuthResult(success=False, handled=False)
        fields = dict(item.split("=", 1) for item in decoded.split("\x01") if "=" in item)
        token = fields.get("auth", "").removeprefix("Bearer ")
        if token in self._owner.tokens:
            return AuthResult(success=True, auth_data=fields.get("user", ""))
        return AuthResult(success=False, handled=False)

    async def handle_RCPT(  # noqa: N802
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        scripted = self._owner.plan.rcpt_replies.get(address.lower())
        if scripted:
            return scripted.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        owner = self._owner
        owner.data_attempts += 1
        action = owner.plan.data_replies.pop(0) if owner.plan.data_replies else "accept"
        if action == "drop":
            _hang_up(server)
            return "451 dropped"
        if action[:1].isdigit():
            return action
        data = envelope.original_content or b""
        await owner.accept(
            Accepted(
                envelope_from=str(envelope.mail_from),
                recipients=tuple(envelope.rcpt_tos),
                data=data,
                auth_mechanism="XOAUTH2" if owner.xoauth2_attempts else "PLAIN/LOGIN",
            )
        )
        if action == "accept-then-drop":
            _hang_up(server)
            return "250 dropped after accepting"
        if action == "accept-then-stall":
            await asyncio.sleep(owner.plan.stall_seconds)
        return "250 2.0.0 Ok: queued"


class FaultySmtpServer:
    """The scripted server, running in its own thread until `stop`."""

    def __init__(
        self,
        infra: Infra,
        *,
        plan: FaultPlan | None = None,
        tokens: set[str] | None = None,
        files_sent: dict[str, str] | None = None,
    ) -> None:
        self.infra = infra
        self.plan = plan or FaultPlan()
        self.tokens = tokens or set()
        self.files_sent = files_sent or {}
        self.accepted: list[Accepted] = []
        self.data_attempts = 0
        self.xoauth2_attempts = 0
        self.host = "127.0.0.1"
        self.port = free_port()
        self._lock = threading.Lock()
        self._controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            authenticator=_accept_any_password,
            auth_required=True,
            auth_require_tls=False,  # loopback only, as the project's development server
        )

    async def accept(self, message: Accepted) -> None:
        with self._lock:
            self.accepted.append(message)
        await lmtp_deliver(
            self.infra.imap_host,
            self.infra.lmtp_port,
            mail_from=message.envelope_from,
            recipients=list(message.recipients),
            data=message.data,
        )
        password = self.files_sent.get(message.envelope_from.lower())
        if password is not None:
            await asyncio.to_thread(self._file_in_sent, message, password)

    def _file_in_sent(self, message: Accepted, password: str) -> None:
        with IMAPClient(self.infra.imap_host, port=self.infra.imap_port, ssl=False) as imap:
            imap.login(message.envelope_from, password)
            imap.append("Sent", message.data, flags=(b"\\Seen",))

    def message_ids(self) -> list[str]:
        with self._lock:
            return [message.message_id for message in self.accepted]

    def start(self) -> "FaultySmtpServer":
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
