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
4. Bcc recipients are shown to the owner of a mailbox the message was seen in, never to
   anyone else, whatever the visibility.

Access is decided per message. A thread is what its visible messages make it: its subject,
participants, count and dates come from those messages only (`seen_thread`), and a thread
with no visible message does not exist for the viewer.

Roles are accepted but deliberately widen nothing: a workspace admin manages settings and
people, not colleagues' mail. Redaction works on allow-lists, so a field added to a schema
later stays hidden until it is named here.
"""

import re
from collections.abc import Iterable, Mapping, Sequence
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


def sees_bcc(viewer: Viewer, mailboxes: Iterable[MailboxShare]) -> bool:
    """Bcc recipients of mail seen in `mailboxes` are shown to an owner of one of them only."""
    return any(owns(viewer, mailbox) for mailbox in mailboxes)


@dataclass(frozen=True)
class Sight:
    """What a viewer may see of one message: its level, and whether its Bcc too."""

    level: Access
    bcc: bool = False


def sight(viewer: Viewer, mailboxes: Iterable[MailboxShare], *, private: bool = False) -> Sight:
    """The one decision about a message seen in `mailboxes` (its thread private or not)."""
    shares = list(mailboxes)
    level = access(viewer, shares, private=private)
    return Sight(level, bcc=level is Access.EVERYTHING and sees_bcc(viewer, shares))


def _addresses(message: MessageDocument, *, bcc: bool) -> list[str]:
    written = [message.from_, *message.to, *message.cc, *(message.bcc if bcc else [])]
    return [address.address.lower() for address in written if address is not None]


def _moment(message: MessageDocument) -> Any:
    return message.date or message.logged_at


_ADDRESS = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")


def scrub_addresses(text: str, shown: Iterable[str]) -> str:
    """`text` with every address not in `shown` replaced by `[address]`."""
    known = {address.lower() for address in shown}
    return _ADDRESS.sub(
        lambda found: found.group(0) if found.group(0).lower() in known else "[address]", text
    )


def seen_thread(
    thread: ThreadDocument, messages: Sequence[tuple[MessageDocument, Sight]]
) -> tuple[ThreadDocument, Access] | None:
    """The thread as its visible messages (oldest first, each with its sight) make it, and
    the viewer's level on it (the highest of its messages'); None when none is visible.

    Subject: the oldest message's seen at SUBJECT or above, blank otherwise. Participants,
    mailboxes, count and dates: from the visible messages only, Bcc only where it is seen.
    Why it is linked to a record keeps only the addresses among those participants.
    """
    visible = [(message, seen) for message, seen in messages if seen.level > Access.NOTHING]
    if not visible:
        return None
    subjects = [m.subject for m, seen in visible if seen.level >= Access.SUBJECT]
    moments = [moment for m, _ in visible if (moment := _moment(m)) is not None]
    participants = list(
        dict.fromkeys(a for m, seen in visible for a in _addresses(m, bcc=seen.bcc))
    )
    shown = thread.model_copy(
        update={
            "subject": subjects[0] if subjects else "",
            "subject_key": thread.subject_key if subjects else "",
            "participants": participants,
            "link_reasons": [
                reason.model_copy(update={"reason": scrub_addresses(reason.reason, participants)})
                for reason in thread.link_reasons
            ],
            "mailbox_ids": list(dict.fromkeys(i for m, _ in visible for i in m.mailbox_ids)),
            "message_count": len(visible),
            "first_message_at": min(moments) if moments else None,
            "last_message_at": max(moments) if moments else None,
        }
    )
    return shown, max(seen.level for _, seen in visible)


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


def redact_message(
    message: Mapping[str, Any], level: Access, *, bcc: bool = False
) -> dict[str, Any] | None:
    """The message as `level` allows: None for NOTHING, else unreadable fields blanked; its
    `bcc` blanked too unless `bcc` (the viewer owns a mailbox it was seen in: `Sight.bcc`).

    Fields keep their keys and types (empty string, empty list, ...) so response schemas
    still validate; `access` tells the reader which level they got.
    """
    if level is Access.NOTHING:
        return None
    if level is Access.EVERYTHING:
        redacted = dict(message)
    else:
        allowed = SUBJECT_FIELDS if level is Access.SUBJECT else METADATA_FIELDS
        redacted = {k: value if k in allowed else _blank(value) for k, value in message.items()}
    if not bcc and "bcc" in redacted:
        redacted["bcc"] = _blank(redacted["bcc"])
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
