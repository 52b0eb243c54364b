"""IMAP sessions on the event loop: a socket and a coroutine per connection, no thread.

A session speaks the small part of IMAP4rev1 Mailsync needs (RFC 3501 with IDLE, ENABLE,
CONDSTORE, SPECIAL-USE, XOAUTH2, LITERAL): commands are sent one at a time and their answers
read as whole responses, a literal (`{n}`) kept with the line that announced it, in the shape
imapclient's response parser (reused for FETCH and LIST answers) expects.

Reading happens in one task per session that survives a timed-out wait: IDLE can stop
waiting without losing half a response, and a command whose answer does not start within
its timeout fails with `ServerTimeoutError`. A response that is still arriving (a large
literal) counts as an answer in progress, so the timeout is one of silence, not of size.
Any failure leaves the session unusable (`broken`); the caller opens a new one.
"""

import asyncio
import contextlib
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from imapclient.imap_utf7 import decode as utf7_decode
from imapclient.imap_utf7 import encode as utf7_encode
from imapclient.response_parser import parse_fetch_response, parse_response

from mailsync_shared.mail_servers.accounts import Login
from mailsync_shared.mail_servers.errors import (
    AuthRefusedError,
    MailServerError,
    ProtocolError,
    ServerTimeoutError,
    TlsError,
    UnreachableError,
)
from mailsync_shared.mail_servers.hosts import CheckedHost, HostGuard, open_stream
from mailsync_shared.oauth import xoauth2_string

Security = Literal["tls", "starttls", "none"]
Item = bytes | tuple[bytes, bytes]
Response = list[Item]
ListEntry = tuple[tuple[bytes, ...], bytes | None, str]

LITERAL = re.compile(rb"\{(\d+)\+?\}$")
CODE = re.compile(rb"^OK \[([A-Z-]+)(?: ([^\]]*))?\]", re.IGNORECASE)
CAPABILITY_CODE = re.compile(rb"\[CAPABILITY ([^\]]*)\]", re.IGNORECASE)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
MAX_LINE = 16 * 1024 * 1024
READ_CHUNK = 256 * 1024
STREAM_LIMIT = 64 * 1024


class LiteralArgument:
    """A command argument sent as a synchronizing literal (any bytes, no quoting)."""

    def __init__(self, data: bytes) -> None:
        self.data = data


Argument = str | LiteralArgument


def quoted(text: str) -> Argument:
    """A string argument: quoted where that is safe, else a literal."""
    if text.isascii() and not any(char in text for char in "\r\n\0"):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return LiteralArgument(text.encode())


def folder_argument(name: str) -> Argument:
    """A folder name as IMAP wants it: modified UTF-7 (RFC 3501 5.1.3), quoted."""
    return quoted(utf7_encode(name).decode("ascii"))


@dataclass(frozen=True)
class Reply:
    """A completed command: its untagged responses (without `* `) and the OK text."""

    untagged: list[Response]
    text: bytes


def first_line(response: Response) -> bytes:
    item = response[0]
    return item[0] if isinstance(item, tuple) else item


class ImapSession:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        host: CheckedHost,
        timeout: float,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._host = host
        self.timeout = timeout
        self.capabilities: set[bytes] = set()
        self.broken = False
        self._reading: asyncio.Task[Response] | None = None
        self._progress = 0
        self._tags = 0

    @classmethod
    async def connect(
        cls,
        host: CheckedHost,
        *,
        security: Security,
        timeout: float,  # noqa: ASYNC109 - the session's answer timeout, kept for every command
    ) -> "ImapSession":
        """Connect to the checked address, read the greeting, STARTTLS where asked."""
        context = ssl.create_default_context() if security != "none" else None
        reader, writer = await open_stream(
            host, tls=context if security == "tls" else None, timeout=timeout, limit=STREAM_LIMIT
        )
        session = cls(reader, writer, host=host, timeout=timeout)
        try:
            greeting = first_line(await session._next(timeout))
            if not greeting.upper().startswith((b"* OK", b"* PREAUTH")):
                raise ProtocolError(f"unexpected greeting: {greeting[:200]!r}")
            session._note_capabilities(greeting)
            if context is not None and security == "starttls":
                await session.command("STARTTLS")
                await session._start_tls(context)
            if not session.capabilities:
                await session.refresh_capabilities()
        except BaseException:
            session.abort()
            raise
        return session

    async def _start_tls(self, context: ssl.SSLContext) -> None:
        try:
            await self._writer.start_tls(context, server_hostname=self._host.name)
        except ssl.SSLError as error:
            raise _tls_error(self._host.name, error) from None
        self.capabilities = set()

    def has(self, capability: bytes) -> bool:
        return capability.upper() in self.capabilities

    def _note_capabilities(self, line: bytes) -> None:
        found = CAPABILITY_CODE.search(line)
        if found:
            self.capabilities = {word.upper() for word in found.group(1).split()}

    async def refresh_capabilities(self) -> None:
        reply = await self.command("CAPABILITY")
        for response in reply.untagged:
            line = first_line(response)
            if line.upper().startswith(b"CAPABILITY "):
                self.capabilities = {word.upper() for word in line.split()[1:]}

    async def login(self, username: str, password: str) -> None:
        try:
            reply = await self.command("LOGIN", quoted(username), quoted(password))
        except CommandRefusedError as error:
            raise AuthRefusedError(error.reason) from None
        await self._after_login(reply)

    async def authenticate_xoauth2(self, username: str, access_token: str) -> None:
        """AUTHENTICATE XOAUTH2: the bearer token in the SASL initial response."""
        response = xoauth2_string(username, access_token)
        try:
            if self.has(b"SASL-IR"):
                reply = await self.command("AUTHENTICATE", "XOAUTH2", response)
            else:
                reply = await self.command("AUTHENTICATE", "XOAUTH2", continuation=response)
        except CommandRefusedError as error:
            raise AuthRefusedError(error.reason) from None
        await self._after_login(reply)

    async def _after_login(self, reply: Reply) -> None:
        self._note_capabilities(reply.text)
        if not CAPABILITY_CODE.search(reply.text):
            await self.refresh_capabilities()

    async def enable(self, *extensions: str) -> None:
        if self.has(b"ENABLE"):
            await self.command("ENABLE", *extensions)

    async def list_folders(self, *, timeout: float | None = None) -> list[ListEntry]:  # noqa: ASYNC109
        reply = await self.command("LIST", '""', '"*"', timeout=timeout)
        entries: list[ListEntry] = []
        for response in reply.untagged:
            if not first_line(response).upper().startswith(b"LIST "):
                continue
            parsed = parse_response(_without_keyword(response, 5))
            flags, delimiter, name = parsed[0], parsed[1], parsed[2]
            text = str(name) if isinstance(name, int) else utf7_decode(name)
            entries.append((tuple(flags), delimiter, text))
        return entries

    async def examine(
        self,
        folder: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[bytes, int]:
        """EXAMINE (read-only SELECT): EXISTS, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ."""
        reply = await self.command("EXAMINE", folder_argument(folder), timeout=timeout)
        return select_answer(reply)

    async def status(
        self,
        folder: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> dict[bytes, int]:
        """STATUS of a folder, leaving the selected one selected: UIDVALIDITY, UIDNEXT, EXISTS
        (its MESSAGES) and, where CONDSTORE is offered, HIGHESTMODSEQ."""
        items = ["UIDVALIDITY", "UIDNEXT", "MESSAGES"]
        if self.has(b"CONDSTORE") or self.has(b"QRESYNC"):
            items.append("HIGHESTMODSEQ")
        reply = await self.command(
            "STATUS", folder_argument(folder), "(" + " ".join(items) + ")", timeout=timeout
        )
        return status_answer(reply)

    async def uid_search(self, criteria: Sequence[Argument]) -> list[int]:
        reply = await self.command("UID", "SEARCH", *criteria)
        found: list[int] = []
        for response in reply.untagged:
            words = first_line(response).split()
            if words and words[0].upper() == b"SEARCH":
                found.extend(int(word) for word in words[1:] if word.isdigit())
        return found

    async def uid_fetch(self, uids: Sequence[int] | str, items: Sequence[str]) -> dict[int, Any]:
        """UID FETCH of UIDs or a UID set (`5:*`), parsed by imapclient's parser:
        UID -> {item name: value}."""
        if not uids:
            return {}
        wanted = uids if isinstance(uids, str) else uid_set(uids)
        reply = await self.command("UID", "FETCH", wanted, "(" + " ".join(items) + ")")
        data: list[Item] = []
        for response in reply.untagged:
            words = first_line(response).split(b" ", 2)
            if len(words) >= 2 and words[1].upper() == b"FETCH":
                data.extend(_without_keyword(response, len(words[0]) + 7, keep=len(words[0]) + 1))
        return dict(parse_fetch_response(data, normalise_times=False, uid_is_key=True))

    async def append(
        self, folder: str, flags: str, message: bytes, *, date: datetime | None = None
    ) -> None:
        """APPEND one message with these flags and, if given, this INTERNALDATE."""
        await self.append_many(folder, flags, [(message, date)])

    async def append_many(
        self, folder: str, flags: str, messages: Sequence[tuple[bytes, datetime | None]]
    ) -> None:
        """APPEND several messages in one command (MULTIAPPEND, RFC 3502: all or none)."""
        parts: list[Argument] = ["APPEND", folder_argument(folder)]
        for message, date in messages:
            parts.append(f"({flags})")
            if date is not None:
                parts.append(f'"{imap_datetime(date)}"')
            parts.append(LiteralArgument(message))
        await self.command(*parts)

    async def noop(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self.command("NOOP", timeout=timeout)

    async def idle(
        self,
        seconds: float,
        *,
        stop: asyncio.Event | None = None,
        answer_within: float | None = None,
    ) -> bool:
        """IDLE on the open folder until it reports new messages (True), `seconds` pass or
        `stop` is set. Ending the IDLE must be answered within `answer_within`."""
        if self.broken:
            raise UnreachableError("connection already failed")
        try:
            return await self._idle(seconds, stop, answer_within or self.timeout)
        except CommandRefusedError:
            raise
        except BaseException:
            self.abort()
            raise

    async def _idle(self, seconds: float, stop: asyncio.Event | None, answer_within: float) -> bool:
        tag = await self._send(["IDLE"])
        loop = asyncio.get_running_loop()
        news = False
        while True:
            response = await self._next(self.timeout)
            line = first_line(response)
            if line.startswith(b"+"):
                break
            news = news or _reports_new_mail(line)
            self._check_tagged(tag, line, "IDLE")
        deadline = loop.time() + seconds
        stopping = asyncio.ensure_future(stop.wait()) if stop is not None else None
        try:
            while not news and (stop is None or not stop.is_set()):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                pushed = await self._next_or_none(remaining, stopping)
                if pushed is None:
                    break
                news = _reports_new_mail(first_line(pushed))
        finally:
            if stopping is not None:
                stopping.cancel()
        await self._write([b"DONE\r\n"])
        await self._finish(tag, "IDLE", answer_within)
        return news

    async def logout(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """LOGOUT, then close; a peer that is gone already is not waited for."""
        try:
            if not self.broken:
                with contextlib.suppress(MailServerError, OSError):
                    await self.command("LOGOUT", timeout=timeout)
        finally:
            self.abort()

    def abort(self) -> None:
        """Close the connection at once."""
        self.broken = True
        if self._reading is not None:
            self._reading.cancel()
            self._reading = None
        with contextlib.suppress(Exception):
            self._writer.close()

    async def command(
        self,
        *parts: Argument,
        continuation: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - silence allowed before the answer
    ) -> Reply:
        """Send one command and read its answer; `CommandRefusedError` on NO or BAD."""
        if self.broken:
            raise UnreachableError("connection already failed")
        try:
            tag = await self._send(list(parts))
            if continuation is not None:
                await self._continue_with(tag, continuation)
            return await self._finish(tag, str(parts[0]), timeout or self.timeout)
        except CommandRefusedError:
            raise
        except BaseException:
            self.abort()
            raise

    async def _continue_with(self, tag: bytes, text: str) -> None:
        while True:
            response = await self._next(self.timeout)
            line = first_line(response)
            if line.startswith(b"+"):
                await self._write([text.encode() + b"\r\n"])
                return
            self._check_tagged(tag, line, "AUTHENTICATE")

    async def _finish(self, tag: bytes, name: str, timeout: float) -> Reply:  # noqa: ASYNC109
        untagged: list[Response] = []
        while True:
            response = await self._next(timeout)
            line = first_line(response)
            if line.startswith(b"* "):
                untagged.append(_strip_untagged(response))
            elif line.startswith(b"+"):
                # A SASL challenge after a refused XOAUTH2 carries the error; answer it empty.
                await self._write([b"\r\n"])
            elif line.startswith(tag + b" "):
                status, _, text = line[len(tag) + 1 :].partition(b" ")
                if status.upper() == b"OK":
                    return Reply(untagged, text)
                raise CommandRefusedError(_refused(name, status, text))

    def _check_tagged(self, tag: bytes, line: bytes, name: str) -> None:
        if line.startswith(tag + b" "):
            status, _, text = line[len(tag) + 1 :].partition(b" ")
            raise CommandRefusedError(_refused(name, status, text))

    async def _send(self, parts: Sequence[Argument]) -> bytes:
        self._tags += 1
        tag = b"M%d" % self._tags
        line = tag
        for part in parts:
            if isinstance(part, LiteralArgument):
                await self._write([line + b" {%d}\r\n" % len(part.data)])
                await self._await_continuation(tag)
                await self._write([part.data])
                line = b""
            else:
                line += b" " + part.encode()
        await self._write([line + b"\r\n"])
        return tag

    async def _await_continuation(self, tag: bytes) -> None:
        while True:
            response = await self._next(self.timeout)
            line = first_line(response)
            if line.startswith(b"+"):
                return
            self._check_tagged(tag, line, "command")

    async def _write(self, chunks: Sequence[bytes]) -> None:
        try:
            self._writer.writelines(chunks)
            async with asyncio.timeout(self.timeout):
                await self._writer.drain()
        except TimeoutError:
            raise ServerTimeoutError(f"{self._host.name} does not read") from None
        except OSError as error:
            raise UnreachableError(f"{self._host.name}: {error}") from None

    def _read_task(self) -> "asyncio.Task[Response]":
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read_response())
        return self._reading

    async def _next(self, timeout: float) -> Response:  # noqa: ASYNC109
        """The next whole response; silence for `timeout` seconds is a dead server."""
        task = self._read_task()
        while True:
            seen = self._progress
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if done:
                break
            if self._progress == seen:
                raise ServerTimeoutError(f"{self._host.name} did not answer in {timeout:g} s")
        self._reading = None
        return task.result()

    async def _next_or_none(
        self,
        timeout: float,  # noqa: ASYNC109
        stopping: "asyncio.Future[Any] | None",
    ) -> Response | None:
        """The next response if one comes within `timeout` (or before `stopping`), else None;
        a response still in flight is kept for the next read."""
        task = self._read_task()
        waiting: set[asyncio.Future[Any]] = {task}
        if stopping is not None:
            waiting.add(stopping)
        await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            return None
        self._reading = None
        return task.result()

    async def _read_response(self) -> Response:
        items: Response = []
        line = await self._read_line()
        while (announced := LITERAL.search(line)) is not None:
            literal = await self._read_exactly(int(announced.group(1)))
            items.append((line, literal))
            line = await self._read_line()
        items.append(line)
        return items

    async def _read_line(self) -> bytes:
        pieces: list[bytes] = []
        size = 0
        while True:
            try:
                chunk = await self._reader.readuntil(b"\r\n")
            except asyncio.LimitOverrunError as error:
                chunk = await self._reader.readexactly(error.consumed)
                size += len(chunk)
                if size > MAX_LINE:
                    raise ProtocolError("response line too long") from None
                pieces.append(chunk)
                self._progress += 1
                continue
            except asyncio.IncompleteReadError:
                raise UnreachableError(f"{self._host.name} closed the connection") from None
            except ssl.SSLError as error:
                raise _tls_error(self._host.name, error) from None
            except OSError as error:
                raise UnreachableError(f"{self._host.name}: {error}") from None
            pieces.append(chunk[:-2])
            self._progress += 1
            return b"".join(pieces)

    async def _read_exactly(self, size: int) -> bytes:
        buffer = bytearray()
        try:
            while len(buffer) < size:
                buffer += await self._reader.readexactly(min(READ_CHUNK, size - len(buffer)))
                self._progress += 1
        except asyncio.IncompleteReadError:
            raise UnreachableError(f"{self._host.name} closed the connection") from None
        except OSError as error:
            raise UnreachableError(f"{self._host.name}: {error}") from None
        return bytes(buffer)


class CommandRefusedError(ProtocolError):
    """The server answered NO or BAD."""


def select_answer(reply: Reply) -> dict[bytes, int]:
    """The numbers of a SELECT/EXAMINE answer (RFC 3501 7.3.1, RFC 7162 3.1.2.1)."""
    answer: dict[bytes, int] = {}
    for response in reply.untagged:
        line = first_line(response)
        code = CODE.match(line)
        if code is not None:
            key, value = code.group(1).upper(), (code.group(2) or b"").strip()
            if value.isdigit():
                answer[key] = int(value)
            continue
        words = line.split()
        if len(words) == 2 and words[0].isdigit() and words[1].upper() in (b"EXISTS", b"RECENT"):
            answer[words[1].upper()] = int(words[0])
    return answer


def status_answer(reply: Reply) -> dict[bytes, int]:
    """The numbers of a STATUS answer (RFC 3501 7.2.4), named as in a SELECT answer."""
    answer: dict[bytes, int] = {}
    for response in reply.untagged:
        if not first_line(response).upper().startswith(b"STATUS "):
            continue
        last = response[-1]
        text = last[0] if isinstance(last, tuple) else last
        words = text[text.rfind(b"(") + 1 : text.rfind(b")")].split()
        for name, value in zip(words[::2], words[1::2], strict=False):
            if value.isdigit():
                answer[b"EXISTS" if name.upper() == b"MESSAGES" else name.upper()] = int(value)
    return answer


def imap_datetime(moment: datetime) -> str:
    """`07-Dec-2026 01:31:21 +0000`: an IMAP date-time (RFC 3501), locale-independent."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    offset = aware.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    zone = f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"
    month = _MONTHS[aware.month - 1]
    return f"{aware.day:02d}-{month}-{aware.year} {aware:%H:%M:%S} {zone}"


def uid_set(uids: Sequence[int]) -> str:
    """`1:3,7,9:10` for [1, 2, 3, 7, 9, 10] (any order)."""
    ranges: list[str] = []
    ordered = sorted(set(uids))
    start = previous = ordered[0]
    for uid in [*ordered[1:], None]:
        if uid is not None and uid == previous + 1:
            previous = uid
            continue
        ranges.append(str(start) if start == previous else f"{start}:{previous}")
        if uid is not None:
            start = previous = uid
    return ",".join(ranges)


def _reports_new_mail(line: bytes) -> bool:
    words = line.split()
    return len(words) >= 3 and words[0] == b"*" and words[2].upper() == b"EXISTS"


def _strip_untagged(response: Response) -> Response:
    return _without_keyword(response, 2)


def _without_keyword(response: Response, cut: int, *, keep: int = 0) -> Response:
    """The response with bytes [keep:cut] of its first line removed."""
    head = response[0]
    line = head[0] if isinstance(head, tuple) else head
    trimmed = line[:keep] + line[cut:]
    first: Item = (trimmed, head[1]) if isinstance(head, tuple) else trimmed
    return [first, *response[1:]]


def _refused(name: str, status: bytes, text: bytes) -> str:
    return f"{name} {status.decode(errors='replace')}: {text.decode(errors='replace')[:300]}"


def _tls_error(name: str, error: ssl.SSLError) -> MailServerError:
    return TlsError(f"{name}: {error}")


async def open_imap(
    account_host: str,
    port: int,
    security: Security,
    login: Login,
    *,
    guard: HostGuard,
    timeout: float,  # noqa: ASYNC109 - the session's answer timeout
) -> ImapSession:
    """A logged-in session: host checked once, connected to the checked address."""
    checked = await guard.check(account_host, port)
    session = await ImapSession.connect(checked, security=security, timeout=timeout)
    try:
        if login.access_token is not None:
            await session.authenticate_xoauth2(login.username, login.access_token)
        else:
            await session.login(login.username, login.password or "")
    except BaseException:
        session.abort()
        raise
    return session
