"""The mailbox's Sent folder over IMAP: saving the sent copy and looking for one.

The folder is the one the server marks `\\Sent` (RFC 6154 SPECIAL-USE), never guessed by name.
imapclient is blocking, so each operation runs in a worker thread on its own connection.
"""

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from mailsync_shared.storage.documents import Security

T = TypeVar("T")

SENT_FLAG = b"\\Sent"
SEEN_FLAG = b"\\Seen"


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


class SentFolder:
    """One mailbox's Sent folder."""

    def __init__(self, account: ImapAccount, *, timeout: float) -> None:
        self._account = account
        self._timeout = timeout

    async def contains_message_id(self, message_id: str) -> bool:
        """Whether a message with this `Message-ID` is in the Sent folder."""
        return await self._run(
            lambda client: _contains(client, find_sent_folder(client), message_id)
        )

    async def append(self, data: bytes, *, date: datetime) -> None:
        """Save `data` byte for byte in the Sent folder, flagged `\\Seen`."""

        def append(client: IMAPClient) -> None:
            client.append(find_sent_folder(client), data, flags=(SEEN_FLAG,), msg_time=date)

        await self._run(append)

    async def _run(self, operation: Callable[[IMAPClient], T]) -> T:
        return await asyncio.to_thread(self._session, operation)

    def _session(self, operation: Callable[[IMAPClient], T]) -> T:
        try:
            client = _connect(self._account, self._timeout)
        except (IMAPClientError, OSError) as error:
            raise SentFolderError(f"cannot log in over IMAP: {error}") from error
        try:
            return operation(client)
        except (IMAPClientError, OSError) as error:
            raise SentFolderError(f"IMAP command failed: {error}") from error
        finally:
            try:
                client.logout()
            except (IMAPClientError, OSError):
                client.shutdown()
