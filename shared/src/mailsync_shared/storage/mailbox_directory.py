"""The mailboxes of a workspace (owner address and sync scope), as read a moment ago.

Capture and associate need every mailbox of the workspace for each batch: whose addresses are
the owners', which mailboxes are client-only. Reading them all is a scan of the workspace's
mailbox documents, among the largest the store holds: at a thousand mailboxes FerretDB took
0.5-1.4 s for it. So each process keeps a copy per workspace, and the api counts the changes
that matter to it (`mailbox_changes`, kind `directory`: a mailbox connected, a sync scope
changed) in one small document per workspace. Every `DIRECTORY_SECONDS` a copy is checked
against that count (one read by `_id`) and scanned again only when the count moved, or at the
latest every `DIRECTORY_MAX_AGE_SECONDS` (a change made around the api). Checks and scans run
in the background while batches go on with the copy they have; a batch waits only for the first
scan of a workspace and when it names a mailbox the copy lacks, which is scanned again at once,
so the mail of a newly connected mailbox is never judged without its own mailbox. A mailbox
connected in the last seconds may be missing from the owners meanwhile.
"""

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from mailsync_shared.storage.mailbox_changes import change_count
from mailsync_shared.storage.scoped import WorkspaceStore

logger = logging.getLogger(__name__)

DIRECTORY_SECONDS = 5.0
DIRECTORY_MAX_AGE_SECONDS = 300.0
KEPT_AT_MOST = 10_000


@dataclass(frozen=True)
class MailboxEntry:
    address: str
    scope: str


@dataclass(frozen=True)
class _Copy:
    entries: dict[str, MailboxEntry]
    version: int
    scanned_at: float
    checked_at: float


class MailboxDirectory:
    def __init__(
        self, seconds: float = DIRECTORY_SECONDS, max_age: float = DIRECTORY_MAX_AGE_SECONDS
    ) -> None:
        self._seconds = seconds
        self._max_age = max_age
        self._kept: dict[str, _Copy] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    async def entries(
        self, store: WorkspaceStore, *, including: Iterable[str] = ()
    ) -> dict[str, MailboxEntry]:
        """Every mailbox of the workspace by id. A copy due for a check is returned while it
        is checked in the background; the mailboxes are scanned before answering when there is
        no copy yet or one of `including` is not in it."""
        kept = self._kept.get(store.workspace_id)
        if kept is None or not set(including) <= kept.entries.keys():
            return (await self._scan(store)).entries
        due = kept.checked_at + self._seconds <= time.monotonic()
        if due and store.workspace_id not in self._refreshing:
            task = asyncio.create_task(self._refresh(store, kept))
            self._refreshing[store.workspace_id] = task
            task.add_done_callback(lambda done: self._refreshed(store.workspace_id, done))
        return kept.entries

    async def _refresh(self, store: WorkspaceStore, kept: _Copy) -> None:
        version = await change_count(store, "directory")
        now = time.monotonic()
        if version != kept.version or kept.scanned_at + self._max_age <= now:
            await self._scan(store)
        elif self._kept.get(store.workspace_id) is kept:
            self._kept[store.workspace_id] = _Copy(kept.entries, version, kept.scanned_at, now)

    def _refreshed(self, workspace_id: str, task: "asyncio.Task[None]") -> None:
        self._refreshing.pop(workspace_id, None)
        if not task.cancelled() and task.exception() is not None:
            logger.warning(
                "mailbox directory not checked; the copy stays",
                extra={"workspace_id": workspace_id, "error": repr(task.exception())},
            )

    async def _scan(self, store: WorkspaceStore) -> _Copy:
        started = time.monotonic()
        version = await change_count(
            store, "directory"
        )  # before the scan: a change after it moves the count
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
        copy = _Copy(entries, version, started, started)
        self._kept[store.workspace_id] = copy
        return copy

    def forget(self, workspace_id: str) -> None:
        """Drop the copy of a workspace whose mailboxes this process just changed."""
        self._kept.pop(workspace_id, None)


# One per process: capture and associate read it for every batch.
DIRECTORY = MailboxDirectory()
