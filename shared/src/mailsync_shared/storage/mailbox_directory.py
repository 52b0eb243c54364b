"""The mailboxes of a workspace (owner address and sync scope), as read a moment ago.

Capture and associate need every mailbox of the workspace for each batch: whose addresses are
the owners', which mailboxes are client-only. Reading them all is a scan of the workspace's
mailbox documents, among the largest the store holds; at a thousand mailboxes it cost FerretDB
seconds per batch. So the list is reused, and once it is older than `DIRECTORY_SECONDS` it is
read again in the background while batches go on with the copy they have: no batch waits for
the scan, except the first of a workspace and one that names a mailbox the copy lacks, which
reads it again at once, so the mail of a newly connected mailbox is never judged without its
own mailbox. Another mailbox connected within the last seconds may be missing from the owners
meanwhile.
"""

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from mailsync_shared.storage.scoped import WorkspaceStore

logger = logging.getLogger(__name__)

DIRECTORY_SECONDS = 5.0
KEPT_AT_MOST = 10_000


@dataclass(frozen=True)
class MailboxEntry:
    address: str
    scope: str


class MailboxDirectory:
    def __init__(self, seconds: float = DIRECTORY_SECONDS) -> None:
        self._seconds = seconds
        self._kept: dict[str, tuple[float, dict[str, MailboxEntry]]] = {}
        self._refreshing: dict[str, asyncio.Task[dict[str, MailboxEntry]]] = {}

    async def entries(
        self, store: WorkspaceStore, *, including: Iterable[str] = ()
    ) -> dict[str, MailboxEntry]:
        """Every mailbox of the workspace by id. A copy older than the interval is returned
        while it is read again in the background; the list is read before answering when
        there is none yet or one of `including` is not in it."""
        kept = self._kept.get(store.workspace_id)
        if kept is None or not set(including) <= kept[1].keys():
            return await self._read(store)
        if kept[0] <= time.monotonic() and store.workspace_id not in self._refreshing:
            task = asyncio.create_task(self._read(store))
            self._refreshing[store.workspace_id] = task
            task.add_done_callback(lambda done: self._refreshed(store.workspace_id, done))
        return kept[1]

    def _refreshed(self, workspace_id: str, task: "asyncio.Task[dict[str, MailboxEntry]]") -> None:
        self._refreshing.pop(workspace_id, None)
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "mailbox directory not read again; the copy stays",
                extra={"workspace_id": workspace_id, "error": repr(task.exception())},
            )

    async def _read(self, store: WorkspaceStore) -> dict[str, MailboxEntry]:
        started = time.monotonic()
        found = await store.mailboxes.find({}, projection={"address": 1, "sync.scope": 1})
        entries = {
            str(document["_id"]): MailboxEntry(
                address=str(document.get("address", "")).lower(),
                scope=str((document.get("sync") or {}).get("scope") or "all"),
            )
            for document in found
        }
        if len(self._kept) >= KEPT_AT_MOST:
            self._kept.clear()
        self._kept[store.workspace_id] = (started + self._seconds, entries)
        return entries

    def forget(self, workspace_id: str) -> None:
        """Drop the copy of a workspace whose mailboxes this process just changed."""
        self._kept.pop(workspace_id, None)


# One per process: capture and associate read it for every batch.
DIRECTORY = MailboxDirectory()
