"""Mailboxes read for sending, each reused for a moment.

A mailbox is read for every send request the api accepts and every send the send service makes,
and it is one of the larger documents the store decodes; a burst of sends names the same
mailbox each time. So a mailbox is reused for `mailbox_cache_seconds` (0: read every time). A
change made through the same process drops its copy at once (`forget`); any other change
takes effect within that time. Callers that miss at the same moment share one read
(`SharedReads`), so a copy running out under a burst costs one read, not one per caller.
"""

import time

from mailsync_shared.shared_reads import SharedReads
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument
from mailsync_shared.storage.scoped import WorkspaceStore

KEPT_AT_MOST = 10_000


class KeptMailboxes:
    """Mailboxes by workspace and id, as read at most `seconds` ago (0: read every time)."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._kept: dict[tuple[str, str], tuple[float, MailboxDocument]] = {}
        self._reads: SharedReads[Document | None] = SharedReads()

    async def get(self, store: WorkspaceStore, mailbox_id: str) -> MailboxDocument | None:
        key = (store.workspace_id, mailbox_id)
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        document = await self._reads.read(
            f"{store.workspace_id}:{mailbox_id}",
            lambda: store.mailboxes.find_one({"_id": mailbox_id}),
        )
        if document is None:
            return None
        mailbox = MailboxDocument.from_document(document)
        if self._seconds > 0:
            if len(self._kept) >= KEPT_AT_MOST:
                self._kept.clear()
            self._kept[key] = (now + self._seconds, mailbox)
        return mailbox

    def forget(self, workspace_id: str, mailbox_id: str) -> None:
        """Drop the copy of a mailbox this process just changed."""
        self._kept.pop((workspace_id, mailbox_id), None)
