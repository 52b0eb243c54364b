"""One IMAP connection to one mailbox, read-only by construction.

`imapclient` is synchronous; every call runs in a worker thread (`asyncio.to_thread`), and the
mailbox's sync task is the only user of its connection, so calls never overlap. The class
offers no method that could change the mailbox: folders are opened with EXAMINE, bodies read
with BODY.PEEK[], and there is no STORE, EXPUNGE, MOVE, COPY or APPEND here.
"""

import asyncio
import contextlib
import functools
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailsync_ingest.folders import ListEntry
from mailsync_shared.storage.documents import ServerAccount

IDLE_CHECK_SECONDS = 1.0
T = TypeVar("T")


class AuthenticationRefusedError(Exception):
    """The server refused the mailbox's credentials."""


@dataclass(frozen=True)
class FolderState:
    uidvalidity: int
    uidnext: int | None
    exists: int
    highest_modseq: int | None = None


@dataclass(frozen=True)
class Login:
    """How to authenticate: a password (LOGIN), or an OAuth access token (XOAUTH2)."""

    username: str
    password: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    size: int
    internal_date: datetime | None
    body: bytes
    provider_thread_id: str | None = None
    provider_message_id: str | None = None


class ImapConnection:
    def __init__(self, client: IMAPClient) -> None:
        self._client = client
        self.capabilities = {bytes(item).upper() for item in client.capabilities()}
        self._socket_timeout: float | None = None
        self._keepalive = 30.0

    @classmethod
    async def open(
        cls,
        account: ServerAccount,
        login: Login,
        *,
        socket_timeout: float,
        keepalive_seconds: float = 30.0,
    ) -> "ImapConnection":
        def connect() -> IMAPClient:
            client = IMAPClient(
                account.host,
                port=account.port,
                ssl=account.security == "tls",
                timeout=socket_timeout,
            )
            try:
                if account.security == "starttls":
                    client.starttls(ssl.create_default_context())
                if login.access_token is not None:
                    client.oauth2_login(login.username, login.access_token)
                else:
                    client.login(login.username, login.password or "")
                capabilities = {bytes(item).upper() for item in client.capabilities()}
                if capabilities & {b"CONDSTORE", b"QRESYNC"}:
                    client.enable("CONDSTORE")
            except LoginError as error:
                with contextlib.suppress(Exception):
                    client.shutdown()
                raise AuthenticationRefusedError(_reason(error)) from None
            except BaseException:
                with contextlib.suppress(Exception):
                    client.shutdown()
                raise
            client.normalise_times = False
            return client

        connection = cls(await asyncio.to_thread(connect))
        connection._socket_timeout = socket_timeout
        connection._keepalive = keepalive_seconds
        return connection

    @property
    def gmail(self) -> bool:
        return b"X-GM-EXT-1" in self.capabilities

    @property
    def condstore(self) -> bool:
        return bool(self.capabilities & {b"CONDSTORE", b"QRESYNC"})

    @property
    def supports_idle(self) -> bool:
        return b"IDLE" in self.capabilities

    async def list_folders(self) -> list[ListEntry]:
        entries = await asyncio.to_thread(
            self._answered_within, self._keepalive, self._client.list_folders
        )
        return [(tuple(flags), delimiter, str(name)) for flags, delimiter, name in entries]

    async def examine(self, folder: str) -> FolderState:
        """Open the folder read-only (EXAMINE)."""
        answer = await asyncio.to_thread(
            self._answered_within,
            self._keepalive,
            functools.partial(self._client.select_folder, folder, True),
        )
        return folder_state(answer)

    async def search(self, criteria: Sequence[str]) -> list[int]:
        found = await asyncio.to_thread(self._client.search, list(criteria))
        return [int(uid) for uid in found]

    async def internal_dates(self, uids: Sequence[int]) -> dict[int, datetime]:
        if not uids:
            return {}
        answer = await asyncio.to_thread(self._client.fetch, list(uids), ["INTERNALDATE"])
        return {int(uid): data[b"INTERNALDATE"] for uid, data in answer.items()}

    async def fetch(self, uids: Sequence[int]) -> list[FetchedMessage]:
        """UID FETCH (UID RFC822.SIZE INTERNALDATE BODY.PEEK[]): bytes without setting \\Seen."""
        if not uids:
            return []
        answer = await asyncio.to_thread(self._client.fetch, list(uids), fetch_items(self.gmail))
        return [
            fetched_message(int(uid), data) for uid, data in answer.items() if b"BODY[]" in data
        ]

    async def wait_for_new_mail(self, seconds: float) -> bool:
        """IDLE on the open folder until it reports new messages (True) or `seconds` pass."""
        stop = threading.Event()
        waiting = asyncio.ensure_future(asyncio.to_thread(self._idle, seconds, stop))
        try:
            return await asyncio.shield(waiting)
        except asyncio.CancelledError:
            stop.set()
            with contextlib.suppress(Exception):
                await waiting
            raise

    def _idle(self, seconds: float, stop: threading.Event) -> bool:
        self._client.idle()
        news = False
        try:
            deadline = time.monotonic() + seconds
            while not stop.is_set() and not news:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                responses = self._client.idle_check(timeout=min(IDLE_CHECK_SECONDS, remaining))
                news = any(_reports_new_mail(response) for response in responses)
        finally:
            self._answered_within(self._keepalive, self._client.idle_done)
        return news

    def _answered_within(self, seconds: float, command: Callable[[], T]) -> T:
        """Run a command whose answer must come within `seconds`: a silently dead connection
        (no RST, no FIN) then fails here instead of hanging for the socket timeout. Only
        FETCH and SEARCH, whose answers may take long to start, wait the full socket timeout."""
        sock = self._client.socket()
        sock.settimeout(seconds)
        try:
            return command()
        finally:
            with contextlib.suppress(OSError):
                sock.settimeout(self._socket_timeout)

    async def noop(self) -> None:
        """NOOP, answered within the keepalive or the connection counts as dead."""
        await asyncio.to_thread(self._answered_within, self._keepalive, self._client.noop)

    async def close(self) -> None:
        """LOGOUT, waiting no longer than the keepalive: the peer may be gone already."""

        def logout() -> None:
            try:
                self._answered_within(self._keepalive, self._client.logout)
            except Exception:
                with contextlib.suppress(Exception):
                    self._client.shutdown()

        await asyncio.to_thread(logout)


def folder_state(answer: dict[bytes, Any]) -> FolderState:
    """The parts of a SELECT/EXAMINE answer the sync needs."""
    uidnext = answer.get(b"UIDNEXT")
    modseq = answer.get(b"HIGHESTMODSEQ")
    return FolderState(
        uidvalidity=int(answer[b"UIDVALIDITY"]),
        uidnext=None if uidnext is None else int(uidnext),
        exists=int(answer.get(b"EXISTS", 0)),
        highest_modseq=None if modseq is None else int(modseq),
    )


def _reports_new_mail(response: Any) -> bool:
    return isinstance(response, tuple) and len(response) >= 2 and response[1] == b"EXISTS"


def fetch_items(gmail: bool) -> list[str]:
    """What one UID FETCH asks for; Gmail's thread and message ids where the server has them."""
    items = ["UID", "RFC822.SIZE", "INTERNALDATE", "BODY.PEEK[]"]
    return [*items, "X-GM-THRID", "X-GM-MSGID"] if gmail else items


def fetched_message(uid: int, data: dict[bytes, Any]) -> FetchedMessage:
    """One message of a parsed FETCH answer."""
    body = bytes(data[b"BODY[]"] or b"")
    thread_id = data.get(b"X-GM-THRID")
    message_id = data.get(b"X-GM-MSGID")
    return FetchedMessage(
        uid=uid,
        size=int(data.get(b"RFC822.SIZE", len(body))),
        internal_date=data.get(b"INTERNALDATE"),
        body=body,
        provider_thread_id=None if thread_id is None else str(thread_id),
        provider_message_id=None if message_id is None else str(message_id),
    )


def _reason(error: Exception) -> str:
    text = str(error)
    return text if len(text) <= 300 else text[:300]
