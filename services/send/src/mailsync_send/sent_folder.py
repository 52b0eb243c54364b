"""The mailbox's Sent folder over IMAP: saving the sent copy and looking for one.

The folder is the one the server marks `\\Sent` (RFC 6154 SPECIAL-USE), never guessed by name.
imapclient is blocking, so each operation runs in a worker thread. `SentFolders` keeps one
logged-in connection per account (with the folder's name) for the next operation; a connection
that fails is dropped, and an operation that failed on a kept connection is tried once more on a
new one (the server may have closed it while it was idle).

Copies to save are queued per folder: the ones that arrive while one is being written go
together in one MULTIAPPEND (RFC 3502: the server saves all of them or none) where the server
offers it. A batch the server refuses, and any batch on a server without MULTIAPPEND, is saved
one APPEND per copy, so each copy gets its own outcome.
"""

import asyncio
import functools
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from mailsync_shared.batching import Batcher
from mailsync_shared.storage.documents import Security

T = TypeVar("T")

SENT_FLAG = b"\\Sent"
SEEN_FLAG = b"\\Seen"
# Copies saved in one MULTIAPPEND at most.
APPEND_BATCH = 50

_Copy = tuple[bytes, datetime]


class SentFolderError(Exception):
    """The Sent folder could not be reached, found or written."""


@dataclass(frozen=True)
class ImapAccount:
    """Where the Sent folder is and how to log in: a password or an OAuth access token."""

    host: str
    port: int
    security: Security
    username: str
    password: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)


def _connect(account: ImapAccount, timeout: float) -> IMAPClient:
    context = ssl.create_default_context()
    client = IMAPClient(
        account.host,
        port=account.port,
        ssl=account.security == "tls",
        ssl_context=context if account.security == "tls" else None,
        timeout=timeout,
    )
    if account.security == "starttls":
        client.starttls(context)
    if account.access_token is not None:
        client.oauth2_login(account.username, account.access_token)
    else:
        client.login(account.username, account.password or "")
    return client


def find_sent_folder(client: IMAPClient) -> str:
    """The folder the server marks `\\Sent`."""
    for flags, _delimiter, name in client.list_folders():
        if SENT_FLAG in flags:
            return str(name)
    raise SentFolderError("the server marks no folder as \\Sent (SPECIAL-USE)")


def _contains(client: IMAPClient, folder: str, message_id: str) -> bool:
    client.select_folder(folder, readonly=True)
    return bool(client.search(["HEADER", "Message-ID", message_id]))


def _append(client: IMAPClient, folder: str, data: bytes, date: datetime) -> None:
    client.append(folder, data, flags=(SEEN_FLAG,), msg_time=date)


def _append_together(client: IMAPClient, folder: str, copies: Sequence[_Copy]) -> bool:
    """Save every copy in one MULTIAPPEND; False if the server does not offer it or refused
    the batch (then none was saved)."""
    if not client.has_capability("MULTIAPPEND"):
        return False
    try:
        client.multiappend(
            folder, [{"msg": data, "flags": (SEEN_FLAG,), "date": date} for data, date in copies]
        )
    except IMAPClient.AbortError:
        raise  # the connection broke: handled as any failed operation
    except IMAPClient.Error:
        return False
    return True


@dataclass
class _Session:
    client: IMAPClient
    folder: str
    since: float


class SentFolder:
    """One mailbox's Sent folder, on a connection kept for the next operation."""

    def __init__(self, account: ImapAccount, *, timeout: float, idle_seconds: float = 60.0):
        self._account = account
        self._timeout = timeout
        self._idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._session: _Session | None = None
        self._copies: Batcher[_Copy, None] = Batcher(self._save, max_size=APPEND_BATCH)

    async def contains_message_id(self, message_id: str) -> bool:
        """Whether a message with this `Message-ID` is in the Sent folder."""
        return await self._run(lambda client, folder: _contains(client, folder, message_id))

    async def append(self, data: bytes, *, date: datetime) -> None:
        """Save `data` byte for byte in the Sent folder, flagged `\\Seen` (with the copies
        queued meanwhile)."""
        await self._copies.submit("", (data, date))

    async def _save(self, _key: str, copies: Sequence[_Copy]) -> list[BaseException | None]:
        if len(copies) > 1 and await self._run(
            lambda client, folder: _append_together(client, folder, copies)
        ):
            return [None] * len(copies)
        outcomes: list[BaseException | None] = []
        for data, date in copies:
            try:
                await self._run(functools.partial(_append, data=data, date=date))
            except SentFolderError as error:
                outcomes.append(error)
            else:
                outcomes.append(None)
        return outcomes

    async def close(self) -> None:
        await asyncio.to_thread(self._close)

    async def _run(self, operation: Callable[[IMAPClient, str], T]) -> T:
        return await asyncio.to_thread(self._locked, operation)

    def _locked(self, operation: Callable[[IMAPClient, str], T]) -> T:
        with self._lock:
            session = self._session
            if session is not None and time.monotonic() - session.since > self._idle_seconds:
                self._end(session)
                session = None
            if session is not None:
                try:
                    return self._on(session, operation)
                except SentFolderError:
                    pass  # closed while idle, perhaps: once more on a new connection
            return self._on(self._open(), operation)

    def _open(self) -> _Session:
        try:
            client = _connect(self._account, self._timeout)
        except (IMAPClientError, OSError) as error:
            raise SentFolderError(f"cannot log in over IMAP: {error}") from error
        try:
            session = _Session(client, find_sent_folder(client), time.monotonic())
        except (IMAPClientError, OSError, SentFolderError) as error:
            self._end(_Session(client, "", 0.0))
            if isinstance(error, SentFolderError):
                raise
            raise SentFolderError(f"IMAP command failed: {error}") from error
        self._session = session
        return session

    def _on(self, session: _Session, operation: Callable[[IMAPClient, str], T]) -> T:
        try:
            result = operation(session.client, session.folder)
        except (IMAPClientError, OSError) as error:
            self._end(session)
            raise SentFolderError(f"IMAP command failed: {error}") from error
        session.since = time.monotonic()
        return result

    def _end(self, session: _Session) -> None:
        if self._session is session:
            self._session = None
        try:
            session.client.logout()
        except (IMAPClientError, OSError):
            session.client.shutdown()

    def _close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._end(self._session)


class SentFolders:
    """A `SentFolder` per account, each keeping its connection between operations."""

    def __init__(self, *, timeout: float) -> None:
        self._timeout = timeout
        self._folders: dict[ImapAccount, SentFolder] = {}

    def of(self, account: ImapAccount) -> SentFolder:
        folder = self._folders.get(account)
        if folder is None:
            if len(self._folders) > 1000:
                self._folders.clear()  # their connections end when they time out
            folder = self._folders[account] = SentFolder(account, timeout=self._timeout)
        return folder

    async def close(self) -> None:
        folders, self._folders = self._folders, {}
        for folder in folders.values():
            await folder.close()
