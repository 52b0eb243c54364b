"""The mailboxes of a workspace (owner address and sync scope), as read a moment ago.

Capture and associate need every mailbox of the workspace for each batch: whose addresses are
the owners', which mailboxes are client-only. Reading them all is a scan of the workspace's
mailbox documents, among the largest the store holds; at a thousand mailboxes it cost FerretDB
seconds per batch. So the list is reused for `DIRECTORY_SECONDS`. A look-up that names a
mailbox the list lacks reads it again at once, so the mail of a newly connected mailbox is
never judged without its own mailbox; another mailbox connected within the last seconds may be
missing from the owners meanwhile.
"""

import time
from collections.abc import Iterable
from dataclasses import dataclass

from mailsync_shared.storage.scoped import WorkspaceStore

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

    async def entries(
        self, store: WorkspaceStore, *, including: Iterable[str] = ()
    ) -> dict[str, MailboxEntry]:
        """Every mailbox of the workspace by id; read again when older than the interval or
        when one of `including` is not in it."""
        now = time.monotonic()
        kept = self._kept.get(store.workspace_id)
        if kept is not None and kept[0] > now and set(including) <= kept[1].keys():
            return kept[1]
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
        self._kept[store.workspace_id] = (now + self._seconds, entries)
        return entries

    def forget(self, workspace_id: str) -> None:
        """Drop the copy of a workspace whose mailboxes this process just changed."""
        self._kept.pop(workspace_id, None)


# One per process: capture and associate read it for every batch.
DIRECTORY = MailboxDirectory()
