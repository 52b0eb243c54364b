"""Who may see what of a thread or message, and the redaction that enforces it.

Access is decided by mailbox, never by role:

1. The owner of a mailbox the mail was seen in sees **everything**, private or not. A
   mailbox connected without a user (by an API key) is owned by the workspace's API keys.
2. A thread made private is **nothing** to everyone else.
3. Otherwise each mailbox shares its mail with the rest of the workspace at its
   visibility: `private` (nothing), `metadata` (participants and dates), `subject`
   (metadata plus the subject) or `workspace` (everything). Mail seen in several
   mailboxes is shared at the most open of their levels: the owner of that mailbox chose
   to share the copy they hold.

Roles are accepted but deliberately widen nothing: a workspace admin manages settings and
people, not colleagues' mail. Redaction works on allow-lists, so a field added to a schema
later stays hidden until it is named here.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal

from mailsync_shared.storage.documents import MessageDocument, ThreadDocument, Visibility
from mailsync_shared.storage.scoped import WorkspaceStore

Role = Literal["admin", "member"]


class Access(IntEnum):
    """How much of a thread or message a viewer may see; a higher level includes the lower."""

    NOTHING = 0
    METADATA = 1
    SUBJECT = 2
    EVERYTHING = 3


SHARED_AT: Mapping[Visibility, Access] = {
    "private": Access.NOTHING,
    "metadata": Access.METADATA,
    "subject": Access.SUBJECT,
    "workspace": Access.EVERYTHING,
}


@dataclass(frozen=True)
class Viewer:
    """A person (`user_id`) or an API key acting for the workspace (`user_id` None)."""

    user_id: str | None
    role: Role = "member"

    @classmethod
    def api_key(cls) -> "Viewer":
        return cls(user_id=None, role="admin")

    @property
    def is_api_key(self) -> bool:
        return self.user_id is None


@dataclass(frozen=True)
class MailboxShare:
    """What access decisions need of one mailbox."""

    owner_user_id: str | None
    visibility: Visibility


def owns(viewer: Viewer, mailbox: MailboxShare) -> bool:
    if mailbox.owner_user_id is None:
        return viewer.is_api_key
    return viewer.user_id == mailbox.owner_user_id


def access(viewer: Viewer, mailboxes: Iterable[MailboxShare], *, private: bool = False) -> Access:
    """The access `viewer` has to mail seen in `mailboxes` (a thread's or one message's)."""
    shares = list(mailboxes)
    if any(owns(viewer, mailbox) for mailbox in shares):
        return Access.EVERYTHING
    if private or not shares:
        return Access.NOTHING
    return max(SHARED_AT[mailbox.visibility] for mailbox in shares)


# Fields readable at each level; a field not listed is blanked below EVERYTHING.
METADATA_FIELDS = frozenset(
    {
        "id",
        "_id",
        "workspace_id",
        "message_id",
        "thread_id",
        "mailbox_ids",
        "direction",
        "from",
        "from_",
        "to",
        "cc",
        "participants",
        "date",
        "logged_at",
        "first_message_at",
        "last_message_at",
        "message_count",
        "contact_ids",
        "company_ids",
        "deal_ids",
        "links",
        "link_reasons",
        "manually_linked",
        "automated",
        "private",
        "visibility",
        "access",
        "defects",
    }
)
SUBJECT_FIELDS = METADATA_FIELDS | {"subject", "subject_key"}


def _blank(value: Any) -> Any:
    if isinstance(value, str):
        return ""
    if isinstance(value, list):
        return []
    if isinstance(value, dict):
        return {}
    if isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return 0
    return None


def redact_message(message: Mapping[str, Any], level: Access) -> dict[str, Any] | None:
    """The message as `level` allows: None for NOTHING, else unreadable fields blanked.

    Fields keep their keys and types (empty string, empty list, ...) so response schemas
    still validate; `access` tells the reader which level they got.
    """
    if level is Access.NOTHING:
        return None
    if level is Access.EVERYTHING:
        return {**message, "access": level.name.lower()}
    allowed = SUBJECT_FIELDS if level is Access.SUBJECT else METADATA_FIELDS
    redacted = {key: value if key in allowed else _blank(value) for key, value in message.items()}
    redacted["access"] = level.name.lower()
    return redacted


def redact_thread(thread: Mapping[str, Any], level: Access) -> dict[str, Any] | None:
    """The thread as `level` allows, its `messages` (when present) redacted the same way."""
    messages = thread.get("messages")
    redacted = redact_message({k: v for k, v in thread.items() if k != "messages"}, level)
    if redacted is None:
        return None
    if isinstance(messages, list):
        redacted["messages"] = [r for m in messages if (r := redact_message(m, level)) is not None]
    return redacted


async def mailbox_shares(store: WorkspaceStore, mailbox_ids: Iterable[str]) -> list[MailboxShare]:
    """The shares of the given mailboxes; unknown (deleted) mailboxes share nothing."""
    wanted = sorted(set(mailbox_ids))
    if not wanted:
        return []
    found = await store.mailboxes.find(
        {"_id": {"$in": wanted}}, projection={"owner_user_id": 1, "visibility": 1}
    )
    return [
        MailboxShare(
            owner_user_id=document.get("owner_user_id"),
            visibility=document.get("visibility", "metadata"),
        )
        for document in found
    ]


async def thread_access(store: WorkspaceStore, viewer: Viewer, thread: ThreadDocument) -> Access:
    return access(viewer, await mailbox_shares(store, thread.mailbox_ids), private=thread.private)


async def message_access(
    store: WorkspaceStore, viewer: Viewer, message: MessageDocument, *, thread_private: bool
) -> Access:
    shares = await mailbox_shares(store, message.mailbox_ids)
    return access(viewer, shares, private=thread_private)


async def visible_threads_filter(
    store: WorkspaceStore, viewer: Viewer, least: Access = Access.METADATA
) -> dict[str, Any]:
    """A thread filter selecting what `viewer` may see at least at `least`, for list reads.

    Combine it with `$and` so pagination counts only visible threads. A search on a field
    shown only above METADATA (the subject) passes that level, so it reveals nothing hidden.
    """
    owned: list[str] = []
    shared: list[str] = []
    for document in await store.mailboxes.find(
        {}, projection={"owner_user_id": 1, "visibility": 1}
    ):
        share = MailboxShare(
            owner_user_id=document.get("owner_user_id"),
            visibility=document.get("visibility", "metadata"),
        )
        if owns(viewer, share):
            owned.append(str(document["_id"]))
        elif SHARED_AT[share.visibility] >= max(least, Access.METADATA):
            shared.append(str(document["_id"]))
    return {
        "$or": [
            {"mailbox_ids": {"$in": owned}},
            {"private": {"$ne": True}, "mailbox_ids": {"$in": shared}},
        ]
    }
