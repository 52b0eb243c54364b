"""What of the workspace's mail a caller may see: the one path every api read of mail takes.

Built on `mailsync_shared.visibility`. The mailboxes' shares are read once per request; list
queries are narrowed with `visible_threads_filter`, so a page counts only threads the caller
may see; each message is then redacted at the level its own mailboxes give, and each thread
shown as its visible messages make it (`seen_thread`).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mailsync_api.problems import ProblemError, not_found
from mailsync_shared.capture_policy.explain import mentions_of
from mailsync_shared.storage.capture_rules import CaptureDecisionDocument
from mailsync_shared.storage.documents import MessageDocument, ThreadDocument
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.visibility import (
    SHARED_AT,
    Access,
    MailboxShare,
    Sight,
    Viewer,
    access,
    owns,
    seen_thread,
    sight,
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

    def sight(self, message: MessageDocument, thread: ThreadDocument) -> Sight:
        """The level on the message and whether its Bcc shows; mailboxes gone share nothing."""
        known = [self.shares[m] for m in message.mailbox_ids if m in self.shares]
        return sight(self.viewer, known, private=thread.private)

    def thread_as_seen(
        self, thread: ThreadDocument, messages: Sequence[MessageDocument]
    ) -> tuple[ThreadDocument, Access] | None:
        """The thread as its messages visible to the viewer make it (None: none is)."""
        return seen_thread(thread, [(m, self.sight(m, thread)) for m in messages])

    def in_full(
        self, thread: ThreadDocument, messages: Sequence[MessageDocument]
    ) -> list[MessageDocument]:
        """Those of `messages` the viewer may read whole (bodies: to reply to or forward)."""
        return [m for m in messages if self.of_message(m, thread) is Access.EVERYTHING]


def require(level: Access, needs: Access = Access.METADATA) -> Access:
    """`level` when it reaches `needs`: a 404 for nothing, a 403 for too little."""
    if level is Access.NOTHING:
        raise not_found("thread")
    if level < needs:
        raise not_enough_access(level, needs)
    return level


def not_enough_access(level: Access, needs: Access = Access.EVERYTHING) -> ProblemError:
    return ProblemError(
        403,
        f"this needs {needs.name.lower()} access to the thread; "
        f"its mailboxes share {level.name.lower()} with you",
        kind="not-enough-access",
        access=level.name.lower(),
    )


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


def _written_to(address: str) -> dict[str, Any]:
    return {"$or": [{"from.address": address}, {"to.address": address}, {"cc.address": address}]}


async def mentions_seen(store: WorkspaceStore, view: MailView, address: str) -> dict[str, Any]:
    """The logged messages mentioning `address` that the viewer may see it on: any of the
    mailboxes they own (Bcc included), or shared with them, outside private threads, where
    the address is not a Bcc recipient."""
    owned = [m for m, share in view.shares.items() if owns(view.viewer, share)]
    shared = [
        m
        for m, share in view.shares.items()
        if m not in owned and SHARED_AT[share.visibility] > Access.NOTHING
    ]
    private = await store.threads.find({"private": True}, projection={"_id": 1})
    return {
        "$or": [
            {"$and": [{"mailbox_ids": {"$in": owned}}, mentions_of(address)]},
            {
                "$and": [
                    {"mailbox_ids": {"$in": shared}},
                    {"thread_id": {"$nin": [str(t["_id"]) for t in private]}},
                    _written_to(address),
                ]
            },
        ]
    }


async def decisions_seen(
    store: WorkspaceStore,
    view: MailView,
    address: str,
    decisions: Sequence[CaptureDecisionDocument],
) -> list[CaptureDecisionDocument]:
    """The capture decisions about `address` the viewer may know of: those made in a mailbox
    of theirs, and those about a message they see `address` on."""
    wanted = sorted({d.message_id for d in decisions})
    messages = [
        MessageDocument.from_document(document)
        for document in await store.messages.find({"message_id": {"$in": wanted}})
    ]
    threads = {
        str(document["_id"]): ThreadDocument.from_document(document)
        for document in await store.threads.find(
            {"_id": {"$in": sorted({m.thread_id for m in messages})}}
        )
    }
    seen_on: set[str] = set()
    for message in messages:
        thread = threads.get(message.thread_id)
        if thread is None:
            continue
        sight = view.sight(message, thread)
        written = [message.from_, *message.to, *message.cc, *(message.bcc if sight.bcc else [])]
        if sight.level > Access.NOTHING and address in {a.address.lower() for a in written if a}:
            seen_on.add(message.message_id)
    return [
        decision
        for decision in decisions
        if decision.message_id in seen_on
        or (
            decision.mailbox_id in view.shares
            and owns(view.viewer, view.shares[decision.mailbox_id])
        )
    ]
