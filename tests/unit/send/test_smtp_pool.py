"""The SMTP session pool: a kept session goes straight to the next transaction, and one the
server closed while it was idle is replaced before anything is sent."""

from dataclasses import dataclass, field

import aiosmtplib

from mailsync_send.relay import SmtpPool
from mailsync_shared.mail_servers.accounts import Login, ServerLogin
from mailsync_shared.mail_servers.hosts import HostGuard

ACCOUNT = ServerLogin("smtp.example.test", 587, "starttls", Login("ann@example.test", password="x"))


@dataclass
class Reply:
    code: int = 250
    message: str = "2.0.0 Ok: queued"


@dataclass
class FakeSession:
    """An SMTP client's side of a session; `gone`: the server closed it while it was idle."""

    gone: bool = False
    commands: list[str] = field(default_factory=list)
    closed: bool = False

    @property
    def is_connected(self) -> bool:
        return not self.closed

    async def mail(self, sender: str) -> Reply:
        if self.gone:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        self.commands.append(f"MAIL {sender}")
        return Reply()

    async def rcpt(self, recipient: str) -> Reply:
        self.commands.append(f"RCPT {recipient}")
        return Reply()

    async def data(self, data: bytes) -> Reply:
        self.commands.append("DATA")
        return Reply()

    async def rset(self) -> Reply:
        self.commands.append("RSET")
        return Reply()

    def close(self) -> None:
        self.closed = True


class Pool(SmtpPool):
    def __init__(self) -> None:
        super().__init__(size=2, timeout=5, guard=HostGuard(allow_private=True))
        self.opened: list[FakeSession] = []

    async def _connect(self, account: ServerLogin) -> aiosmtplib.SMTP:
        session = FakeSession()
        self.opened.append(session)
        return session  # type: ignore[return-value]


async def relay(pool: Pool) -> None:
    result = await pool.relay(
        ACCOUNT, envelope_from="ann@example.test", recipients=("bob@x.test",), data=b"Hi\r\n"
    )
    assert result.accepted == ("bob@x.test",)


async def test_a_kept_session_sends_the_next_message_without_a_reset() -> None:
    pool = Pool()
    await relay(pool)
    await relay(pool)
    [session] = pool.opened
    assert session.commands == ["MAIL ann@example.test", "RCPT bob@x.test", "DATA"] * 2


async def test_a_session_the_server_closed_while_idle_is_replaced_before_anything_is_sent() -> None:
    pool = Pool()
    await relay(pool)
    first = pool.opened[0]
    first.gone = True
    await relay(pool)
    assert len(pool.opened) == 2
    assert first.closed
    assert first.commands == ["MAIL ann@example.test", "RCPT bob@x.test", "DATA"]
    assert pool.opened[1].commands == ["MAIL ann@example.test", "RCPT bob@x.test", "DATA"]
    # The new session is kept for the message after.
    await relay(pool)
    assert len(pool.opened) == 2
