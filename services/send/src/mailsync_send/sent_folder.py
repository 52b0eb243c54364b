"""The mailbox's Sent folder over IMAP: saving the sent copy and looking for one.

The folder is the one the server marks `\\Sent` (RFC 6154 SPECIAL-USE), never guessed by name.
Sessions come from the shared mail-server layer: the host is checked once and connected to at
the checked address, and everything runs on the event loop. `SentFolders` keeps one logged-in
session per account (with the folder's name) for the next operation; a session that fails is
dropped, and an operation that failed on a kept session is tried once more on a new one (the
server may have closed it while it was idle).

Copies to save are queued per folder: the ones that arrive while one is being written go
together in one MULTIAPPEND (RFC 3502: the server saves all of them or none) where the server
offers it. A batch the server refuses, and any batch on a server without MULTIAPPEND, is saved
one APPEND per copy, so each copy gets its own outcome.
"""

import asyncio
import contextlib
import functools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from mailsync_shared.batching import Batcher
from mailsync_shared.mail_servers.accounts import ServerLogin
from mailsync_shared.mail_servers.errors import MailServerError, failure_reason
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.mail_servers.imap import CommandRefusedError, ImapSession, open_imap, quoted

T = TypeVar("T")

SENT_FLAG = b"\\SENT"
SEEN = "\\Seen"
# Copies saved in one MULTIAPPEND at most.
APPEND_BATCH = 50

_Copy = tuple[bytes, datetime]
Operation = Callable[[ImapSession, str], Awaitable[T]]


class SentFolderError(Exception):
    """The Sent folder could not be reached, found or written."""


async def find_sent_folder(session: ImapSession) -> str:
    """The folder the server marks `\\Sent`."""
    for flags, _delimiter, name in await session.list_folders():
        if SENT_FLAG in {flag.upper() for flag in flags}:
            return name
    raise SentFolderError("the server marks no folder as \\Sent (SPECIAL-USE)")


async def _contains(session: ImapSession, folder: str, message_id: str) -> bool:
    await session.examine(folder)
    return bool(await session.uid_search(["HEADER", "Message-ID", quoted(message_id)]))


async def _append(session: ImapSession, folder: str, *, data: bytes, date: datetime) -> None:
    await session.append(folder, SEEN, data, date=date)


async def _append_together(session: ImapSession, folder: str, copies: Sequence[_Copy]) -> bool:
    """Save every copy in one MULTIAPPEND; False if the server does not offer it or refused
    the batch (then none was saved)."""
    if not session.has(b"MULTIAPPEND"):
        return False
    try:
        await session.append_many(folder, SEEN, [(data, date) for data, date in copies])
    except CommandRefusedError:
        return False
    return True


@dataclass
class _Session:
    session: ImapSession
    folder: str
    since: float


class SentFolder:
    """One mailbox's Sent folder, on a session kept for the next operation."""

    def __init__(
        self,
        account: ServerLogin,
        *,
        guard: HostGuard,
        timeout: float,
        idle_seconds: float = 60.0,
    ) -> None:
        self._account = account
        self._guard = guard
        self._timeout = timeout
        self._idle_seconds = idle_seconds
        self._lock = asyncio.Lock()
        self._kept: _Session | None = None
        self._copies: Batcher[_Copy, None] = Batcher(self._save, max_size=APPEND_BATCH)

    async def contains_message_id(self, message_id: str) -> bool:
        """Whether a message with this `Message-ID` is in the Sent folder."""
        return await self._run(lambda session, folder: _contains(session, folder, message_id))

    async def append(self, data: bytes, *, date: datetime) -> None:
        """Save `data` byte for byte in the Sent folder, flagged `\\Seen` (with the copies
        queued meanwhile)."""
        await self._copies.submit("", (data, date))

    async def _save(self, _key: str, copies: Sequence[_Copy]) -> list[BaseException | None]:
        if len(copies) > 1 and await self._run(
            lambda session, folder: _append_together(session, folder, copies)
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
        async with self._lock:
            if self._kept is not None:
                await self._end(self._kept)

    async def _run(self, operation: Operation[T]) -> T:
        async with self._lock:
            kept = self._kept
            if kept is not None and time.monotonic() - kept.since > self._idle_seconds:
                await self._end(kept)
                kept = None
            if kept is not None:
                try:
                    return await self._on(kept, operation)
                except SentFolderError:
                    pass  # closed while idle, perhaps: once more on a new session
            return await self._on(await self._open(), operation)

    async def _open(self) -> _Session:
        account = self._account
        try:
            session = await open_imap(
                account.host,
                account.port,
                account.security,
                account.login,
                guard=self._guard,
                timeout=self._timeout,
            )
        except MailServerError as error:
            raise SentFolderError(f"cannot log in over IMAP: {failure_reason(error)}") from error
        try:
            kept = _Session(session, await find_sent_folder(session), time.monotonic())
        except MailServerError as error:
            session.abort()
            raise SentFolderError(f"IMAP command failed: {failure_reason(error)}") from error
        except BaseException:
            session.abort()
            raise
        self._kept = kept
        return kept

    async def _on(self, kept: _Session, operation: Operation[T]) -> T:
        try:
            result = await operation(kept.session, kept.folder)
        except MailServerError as error:
            await self._end(kept)
            raise SentFolderError(f"IMAP command failed: {failure_reason(error)}") from error
        kept.since = time.monotonic()
        return result

    async def _end(self, kept: _Session) -> None:
        if self._kept is kept:
            self._kept = None
        with contextlib.suppress(MailServerError, OSError):
            await kept.session.logout(timeout=min(self._timeout, 5.0))


class SentFolders:
    """A `SentFolder` per account, each keeping its session between operations."""

    def __init__(self, *, guard: HostGuard, timeout: float) -> None:
        self._guard = guard
        self._timeout = timeout
        self._folders: dict[ServerLogin, SentFolder] = {}

    def of(self, account: ServerLogin) -> SentFolder:
        folder = self._folders.get(account)
        if folder is None:
            if len(self._folders) > 1000:
                self._folders.clear()  # their sessions end when the server times them out
            folder = self._folders[account] = SentFolder(
                account, guard=self._guard, timeout=self._timeout
            )
        return folder

    async def close(self) -> None:
        folders, self._folders = self._folders, {}
        for folder in folders.values():
            await folder.close()
