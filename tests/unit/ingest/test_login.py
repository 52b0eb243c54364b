"""How ingest talks IMAP: LOGIN or XOAUTH2, CONDSTORE enabled, read-only commands, IDLE.

A scripted server on loopback answers like Dovecot does and records what the client sent.
"""

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from mailsync_ingest.imap_connection import ImapConnection
from mailsync_shared.mail_servers.accounts import Login
from mailsync_shared.mail_servers.errors import AuthRefusedError, HostRefusedError
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.oauth import xoauth2_string
from mailsync_shared.storage.documents import ServerAccount

CAPABILITIES = b"IMAP4rev1 IDLE ENABLE CONDSTORE AUTH=PLAIN AUTH=XOAUTH2"
BODY = b"Subject: Pilot\r\nMessage-ID: <a@client.test>\r\n\r\nHi\r\n"


class ScriptedServer:
    def __init__(self, capabilities: bytes = CAPABILITIES, accept: bool = True) -> None:
        self.capabilities = capabilities
        self.accept = accept
        self.received: list[bytes] = []
        self.idle_news = asyncio.Event()
        self.idle_tag = b""
        self.pushing: asyncio.Future[None] = asyncio.Future()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY " + self.capabilities + b"] ready\r\n")
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while line := await reader.readline():
                line = line.rstrip(b"\r\n")
                self.received.append(line)
                tag, _, command = line.partition(b" ")
                verb = b"DONE" if line == b"DONE" else command.split(b" ")[0].upper()
                if verb == b"AUTHENTICATE" and command.count(b" ") == 1:
                    writer.write(b"+ \r\n")
                    self.received.append((await reader.readline()).rstrip(b"\r\n"))
                await self.answer(tag, verb, writer)
                await writer.drain()

    async def answer(self, tag: bytes, verb: bytes, writer: asyncio.StreamWriter) -> None:
        if verb in (b"LOGIN", b"AUTHENTICATE"):
            if not self.accept:
                writer.write(tag + b" NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
                return
            writer.write(tag + b" OK [CAPABILITY " + self.capabilities + b"] Logged in\r\n")
        elif verb == b"ENABLE":
            writer.write(b"* ENABLED CONDSTORE\r\n" + tag + b" OK Enabled.\r\n")
        elif verb == b"LIST":
            writer.write(
                b'* LIST (\\HasNoChildren) "/" INBOX\r\n'
                b'* LIST (\\HasNoChildren \\Sent) "/" {17}\r\nSent &AMQ-nderung\r\n'
                + tag
                + b" OK List completed.\r\n"
            )
        elif verb == b"EXAMINE":
            writer.write(
                b"* FLAGS (\\Answered \\Seen)\r\n* 3 EXISTS\r\n* 0 RECENT\r\n"
                b"* OK [UIDVALIDITY 1732600000] UIDs valid\r\n* OK [UIDNEXT 8] Predicted\r\n"
                b"* OK [HIGHESTMODSEQ 12] Highest\r\n"
                + tag
                + b" OK [READ-ONLY] Examine completed.\r\n"
            )
        elif verb == b"UID":
            writer.write(
                b"* SEARCH 5 7\r\n" if b"SEARCH" in self.received[-1] else self.fetch_answer()
            )
            writer.write(tag + b" OK done.\r\n")
        elif verb == b"IDLE":
            self.idle_tag = tag
            writer.write(b"+ idling\r\n")

            async def push() -> None:
                await self.idle_news.wait()
                writer.write(b"* 4 EXISTS\r\n")

            self.pushing = asyncio.ensure_future(push())
        elif verb == b"DONE":
            self.pushing.cancel()
            writer.write(self.idle_tag + b" OK Idle completed.\r\n")
        elif verb == b"LOGOUT":
            writer.write(b"* BYE Logging out\r\n" + tag + b" OK Logout completed.\r\n")
        else:
            writer.write(tag + b" OK done.\r\n")

    def fetch_answer(self) -> bytes:
        return (
            b'* 1 FETCH (UID 5 RFC822.SIZE %d INTERNALDATE "17-Jul-2026 02:44:25 +0000" '
            b"BODY[] {%d}\r\n" % (len(BODY), len(BODY)) + BODY + b")\r\n"
            b"* 2 FETCH (FLAGS (\\Seen))\r\n"
        )


@contextlib.asynccontextmanager
async def serving(server: ScriptedServer) -> AsyncIterator[ServerAccount]:
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    try:
        yield ServerAccount(host="127.0.0.1", port=port, security="none", username="ann")
    finally:
        listener.close()


async def opened(account: ServerAccount, login: Login) -> ImapConnection:
    return await ImapConnection.open(
        account, login, guard=HostGuard(allow_private=True), socket_timeout=5, keepalive_seconds=5
    )


def sent(server: ScriptedServer, predicate: Callable[[bytes], bool]) -> list[bytes]:
    return [line for line in server.received if predicate(line)]


async def test_xoauth2_sends_the_bearer_token_in_the_sasl_string() -> None:
    server = ScriptedServer()
    async with serving(server) as account:
        connection = await opened(account, Login("ann@example.test", access_token="ya29.token"))
        await connection.close()

    [authenticate] = sent(server, lambda line: b"AUTHENTICATE" in line)
    assert authenticate.endswith(b"AUTHENTICATE XOAUTH2")
    response = server.received[server.received.index(authenticate) + 1]
    assert base64.b64decode(response) == b"user=ann@example.test\x01auth=Bearer ya29.token\x01\x01"
    assert response.decode() == xoauth2_string("ann@example.test", "ya29.token")
    assert connection.condstore
    assert sent(server, lambda line: line.endswith(b"ENABLE CONDSTORE"))


async def test_password_login_quotes_the_password() -> None:
    server = ScriptedServer()
    async with serving(server) as account:
        connection = await opened(account, Login("ann", password='se"cret'))
        await connection.close()

    assert sent(server, lambda line: line.endswith(b'LOGIN "ann" "se\\"cret"'))
    assert not sent(server, lambda line: b"AUTHENTICATE" in line)


async def test_a_refused_login_is_an_auth_refusal() -> None:
    async with serving(ScriptedServer(accept=False)) as account:
        with pytest.raises(AuthRefusedError, match="Authentication failed"):
            await opened(account, Login("ann", password="wrong"))


async def test_a_private_host_is_refused_before_connecting() -> None:
    server = ScriptedServer()
    async with serving(server) as account:
        with pytest.raises(HostRefusedError, match="loopback"):
            await ImapConnection.open(
                account,
                Login("ann", password="secret"),
                guard=HostGuard(allow_private=False),
                socket_timeout=5,
            )
    assert server.received == []


async def test_read_only_commands_and_their_answers() -> None:
    server = ScriptedServer()
    async with serving(server) as account:
        connection = await opened(account, Login("ann", password="secret"))
        folders = await connection.list_folders()
        state = await connection.examine("Sent Änderung")
        found = await connection.search(["UID", "5:*"])
        [message] = await connection.fetch([5, 6, 7])
        await connection.close()

    assert [(name, b"\\Sent" in flags) for flags, _, name in folders] == [
        ("INBOX", False),
        ("Sent Änderung", True),
    ]
    assert sent(server, lambda line: line.endswith(b'EXAMINE "Sent &AMQ-nderung"'))
    assert (state.uidvalidity, state.uidnext, state.exists, state.highest_modseq) == (
        1732600000,
        8,
        3,
        12,
    )
    assert found == [5, 7]
    assert (message.uid, message.body, message.size) == (5, BODY, len(BODY))
    fetch = b"UID FETCH 5:7 (UID RFC822.SIZE INTERNALDATE BODY.PEEK[])"
    assert sent(server, lambda line: fetch in line)
    assert not sent(server, lambda line: b" SELECT " in line or b" STORE " in line)


async def test_idle_returns_when_the_server_reports_new_mail() -> None:
    server = ScriptedServer()
    async with serving(server) as account:
        connection = await opened(account, Login("ann", password="secret"))
        await connection.examine("INBOX")
        waiting = asyncio.ensure_future(connection.wait_for_new_mail(30))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        server.idle_news.set()
        assert await asyncio.wait_for(waiting, 5)
        assert await connection.search(["UID", "5:*"]) == [5, 7]  # the session goes on
        await connection.close()

    assert sent(server, lambda line: line == b"DONE")


async def test_idle_ends_when_asked_to_stop() -> None:
    server = ScriptedServer()
    async with serving(server) as account:
        connection = await opened(account, Login("ann", password="secret"))
        await connection.examine("INBOX")
        stop = asyncio.Event()
        waiting = asyncio.ensure_future(connection.wait_for_new_mail(30, stop))
        await asyncio.sleep(0.05)
        stop.set()
        assert not await asyncio.wait_for(waiting, 5)
        await connection.close()

    assert sent(server, lambda line: line == b"DONE")
