"""One IMAP connection to one mailbox, read-only by construction.

The connection is an `ImapSession` of the shared mail-server layer: it runs on the event loop,
so a mailbox costs a socket and a coroutine, and an IDLE waits without holding a thread. The
mailbox's sync task is the only user of its connection, so commands never overlap. The class
offers no method that could change the mailbox: folders are opened with EXAMINE (or looked at
with STATUS), bodies read with BODY.PEEK[], and there is no STORE, EXPUNGE, MOVE, COPY or APPEND
here.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailsync_ingest.folders import ListEntry
from mailsync_shared.mail_servers.accounts import Login
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.mail_servers.imap import ImapSession, open_imap
from mailsync_shared.storage.documents import ServerAccount


@dataclass(frozen=True)
class FolderState:
    uidvalidity: int
    uidnext: int | None
    exists: int
    highest_modseq: int | None = None


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    size: int
    internal_date: datetime | None
    body: bytes
    provider_thread_id: str | None = None
    provider_message_id: str | None = None


class ImapConnection:
    def __init__(self, session: ImapSession, *, keepalive_seconds: float) -> None:
        self._session = session
        self._keepalive = keepalive_seconds
        self._selected: str | None = None
        # The folder opened by the connection's last command and what that EXAMINE answered;
        # None once any other command ran since.
        self._just_examined: tuple[str, FolderState] | None = None

    @classmethod
    async def open(
        cls,
        account: ServerAccount,
        login: Login,
        *,
        guard: HostGuard,
        socket_timeout: float,
        keepalive_seconds: float = 30.0,
    ) -> "ImapConnection":
        session = await open_imap(
            account.host,
            account.port,
            account.security,
            login,
            guard=guard,
            timeout=socket_timeout,
        )
        try:
            if session.capabilities & {b"CONDSTORE", b"QRESYNC"}:
                await session.enable("CONDSTORE")
        except BaseException:
            session.abort()
            raise
        return cls(session, keepalive_seconds=keepalive_seconds)

    @property
    def capabilities(self) -> set[bytes]:
        return self._session.capabilities

    @property
    def gmail(self) -> bool:
        return self._session.has(b"X-GM-EXT-1")

    @property
    def condstore(self) -> bool:
        return bool(self.capabilities & {b"CONDSTORE", b"QRESYNC"})

    @property
    def supports_idle(self) -> bool:
        return self._session.has(b"IDLE")

    async def list_folders(self) -> list[ListEntry]:
        self._just_examined = None
        return list(await self._session.list_folders(timeout=self._keepalive))

    async def examine(self, folder: str) -> FolderState:
        """Open the folder read-only (EXAMINE), answered within the keepalive."""
        self._just_examined = self._selected = None  # a refused EXAMINE leaves none open
        state = folder_state(await self._session.examine(folder, timeout=self._keepalive))
        self._selected, self._just_examined = folder, (folder, state)
        return state

    def just_examined(self, folder: str) -> FolderState | None:
        """What EXAMINE answered for `folder`, when that was this connection's last command."""
        if self._just_examined is None or self._just_examined[0] != folder:
            return None
        return self._just_examined[1]

    async def peek(self, folder: str) -> FolderState:
        """The folder's state without opening it (STATUS, answered within the keepalive), where
        the server has CONDSTORE, so that a folder that did not change costs one short answer
        and the open folder stays open. EXAMINE for the open folder itself (STATUS is not meant
        for it), and without CONDSTORE, where every round looks inside every folder anyway."""
        if not self.condstore or folder == self._selected:
            return await self.examine(folder)
        self._just_examined = None
        return folder_state(await self._session.status(folder, timeout=self._keepalive))

    async def search(self, criteria: Sequence[str]) -> list[int]:
        self._just_examined = None
        return await self._session.uid_search(criteria)

    async def internal_dates(self, uids: Sequence[int]) -> dict[int, datetime]:
        answer = await self._uid_fetch(uids, ["INTERNALDATE"])
        return {int(uid): data[b"INTERNALDATE"] for uid, data in answer.items()}

    async def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """RFC822.SIZE of each message (bytes a FETCH of it will bring)."""
        return _sizes(await self._uid_fetch(uids, ["UID", "RFC822.SIZE"]))

    async def sizes_from(self, first_uid: int) -> dict[int, int]:
        """RFC822.SIZE of every message from `first_uid` on (`n:*` also answers with the last
        message when no UID reaches n: callers filter)."""
        return _sizes(await self._uid_fetch(f"{first_uid}:*", ["UID", "RFC822.SIZE"]))

    async def _uid_fetch(self, uids: Sequence[int] | str, items: Sequence[str]) -> dict[int, Any]:
        self._just_examined = None
        return await self._session.uid_fetch(uids, items)

    async def fetch(self, uids: Sequence[int]) -> list[FetchedMessage]:
        """UID FETCH (UID RFC822.SIZE INTERNALDATE BODY.PEEK[]): bytes without setting \\Seen."""
        answer = await self._uid_fetch(uids, fetch_items(self.gmail))
        return [
            fetched_message(int(uid), data) for uid, data in answer.items() if b"BODY[]" in data
        ]

    async def wait_for_new_mail(self, seconds: float, stop: asyncio.Event | None = None) -> bool:
        """IDLE on the open folder until it reports new messages (True), `seconds` pass or
        `stop` is set; the end of the IDLE must be answered within the keepalive."""
        self._just_examined = None
        return await self._session.idle(seconds, stop=stop, answer_within=self._keepalive)

    async def noop(self) -> None:
        """NOOP, answered within the keepalive or the connection counts as dead."""
        self._just_examined = None
        await self._session.noop(timeout=self._keepalive)

    async def close(self) -> None:
        """LOGOUT, waiting no longer than the keepalive: the peer may be gone already."""
        await self._session.logout(timeout=self._keepalive)


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


def _sizes(answer: dict[int, Any]) -> dict[int, int]:
    return {int(uid): int(data.get(b"RFC822.SIZE", 0)) for uid, data in answer.items()}


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
