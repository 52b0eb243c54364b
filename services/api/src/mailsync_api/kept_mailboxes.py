"""Mailboxes the api reads to accept send requests, each reused for a moment.

A mailbox is read on every `POST /v1/send-requests`, and it is one of the larger documents the
store decodes; a sender posting a burst names the same mailbox each time. So a mailbox read for
a send request is reused for `mailbox_cache_seconds` (as the send service reuses it): a
disconnect, or a change of owner, takes effect on new send requests within that time. The
send service checks the mailbox again before anything goes out.
"""

import time

from mailsync_shared.storage.documents import MailboxDocument
from mailsync_shared.storage.scoped import WorkspaceStore

KEPT_AT_MOST = 10_000


class KeptMailboxes:
    """Mailboxes by workspace and id, as read at most `seconds` ago (0: read every time)."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._kept: dict[tuple[str, str], tuple[float, MailboxDocument]] = {}

    async def get(self, store: WorkspaceStore, mailbox_id: str) -> MailboxDocument | None:
        key = (store.workspace_id, mailbox_id)
        now = time.monotonic()
        kept = self._kept.get(key)
        if kept is not None and kept[0] > now:
            return kept[1]
        document = await store.mailboxes.find_one({"_id": mailbox_id})
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
