"""What of the workspace's mail a caller may see: the one path every api read of mail takes.

Built on `mailsync_shared.visibility`. The mailboxes' shares are read once per request; list
queries are narrowed with `visible_threads_filter`, so a page counts only threads the caller
may see; each thread and message is then redacted at the level its mailboxes give.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mailsync_api.problems import ProblemError, not_found
from mailsync_shared.storage.documents import MessageDocument, ThreadDocument
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.visibility import (
    Access,
    MailboxShare,
    Viewer,
    access,
    visible_threads_filter,
)


@dataclass(frozen=True)
class MailView:
    """One viewer and the shares of every mailbox of the workspace, by mailbox id."""

    viewer: Viewer
    shares: Mapping[str, MailboxShare]

    def level(self, mailbox_ids: Iterable[str], *, private: bool) -> Access:
        """Mailboxes no longer there share nothing."""
        known = [self.shares[m] for m in mailbox_ids if m in self.shares]
        return access(self.viewer, known, private=private)

    def of_thread(self, thread: ThreadDocument) -> Access:
        return self.level(thread.mailbox_ids, private=thread.private)

    def of_message(self, message: MessageDocument, thread: ThreadDocument) -> Access:
        """A message is shared by the mailboxes it was seen in; the thread's privacy applies."""
        return self.level(message.mailbox_ids, private=thread.private)

    def require(self, thread: ThreadDocument, needs: Access = Access.METADATA) -> Access:
        """The caller's level on `thread`: a 404 when they may see nothing, a 403 below `needs`."""
        level = self.of_thread(thread)
        if level is Access.NOTHING:
            raise not_found("thread")
        if level < needs:
            raise ProblemError(
                403,
                f"this needs {needs.name.lower()} access to the thread; "
                f"its mailboxes share {level.name.lower()} with you",
                kind="not-enough-access",
                access=level.name.lower(),
            )
        return level


async def mail_view(store: WorkspaceStore, viewer: Viewer) -> MailView:
    documents = await store.mailboxes.find({}, projection={"owner_user_id": 1, "visibility": 1})
    return MailView(
        viewer,
        {
            str(document["_id"]): MailboxShare(
                owner_user_id=document.get("owner_user_id"),
                visibility=document.get("visibility", "metadata"),
            )
            for document in documents
        },
    )


async def visible_only(
    store: WorkspaceStore,
    viewer: Viewer,
    filter_: Mapping[str, Any],
    least: Access = Access.METADATA,
) -> dict[str, Any]:
    """`filter_` narrowed to the threads `viewer` may see at least at `least`."""
    visible = await visible_threads_filter(store, viewer, least)
    return {"$and": [dict(filter_), visible]} if filter_ else visible
