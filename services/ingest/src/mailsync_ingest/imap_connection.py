"""One IMAP connection to one mailbox, read-only by construction.

`imapclient` is synchronous; every call runs in a worker thread (`asyncio.to_thread`), and the
mailbox's sync task is the only user of its connection, so calls never overlap. The class
offers no method that could change the mailbox: folders are opened with EXAMINE, bodies read
with BODY.PEEK[], and there is no STORE, EXPUNGE, MOVE, COPY or APPEND here.
"""

import asyncio
import contextlib
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from mailsync_ingest.folders import ListEntry
from mailsync_shared.storage.documents import ServerAccount

IDLE_CHECK_SECONDS = 1.0


class AuthenticationRefusedError(Exception):
    """The server refused the mailbox's credentials."""


@dataclass(frozen=True)
class FolderState:
    uidvalidity: int
    uidnext: int | None
    exists: int


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

    @classmethod
    async def open(
        cls, account: ServerAccount, password: str, *, socket_timeout: float
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
                client.login(account.username, password)
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

        return cls(await asyncio.to_thread(connect))

    @property
    def gmail(self) -> bool:
        return b"X-GM-EXT-1" in self.capabilities

    @property
    def supports_idle(self) -> bool:
        return b"IDLE" in self.capabilities

    async def list_folders(self) -> list[ListEntry]:
        entries = await asyncio.to_thread(self._client.list_folders)
        return [(tuple(flags), delimiter, str(name)) for flags, delimiter, name in entries]

    async def examine(self, folder: str) -> FolderState:
        """Open the folder read-only (EXAMINE)."""
        answer = await asyncio.to_thread(self._client.select_folder, folder, True)
        uidnext = answer.get(b"UIDNEXT")
        return FolderState(
            uidvalidity=int(answer[b"UIDVALIDITY"]),
            uidnext=None if uidnext is None else int(uidnext),
            exists=int(answer.get(b"EXISTS", 0)),
        )

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
        items = ["UID", "RFC822.SIZE", "INTERNALDATE", "BODY.PEEK[]"]
        if self.gmail:
            items += ["X-GM-THRID", "X-GM-MSGID"]
        answer = await asyncio.to_thread(self._client.fetch, list(uids), items)
        return [_fetched(int(uid), data) for uid, data in answer.items() if b"BODY[]" in data]

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
            self._client.idle_done()
        return news

    async def noop(self) -> None:
        await asyncio.to_thread(self._client.noop)

    async def close(self) -> None:
        def logout() -> None:
            try:
                self._client.logout()
            except Exception:
                with contextlib.suppress(Exception):
                    self._client.shutdown()

        await asyncio.to_thread(logout)


def _reports_new_mail(response: Any) -> bool:
    return isinstance(response, tuple) and len(response) >= 2 and response[1] == b"EXISTS"


def _fetched(uid: int, data: dict[bytes, Any]) -> FetchedMessage:
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
