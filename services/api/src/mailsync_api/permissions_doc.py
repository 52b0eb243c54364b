"""`docs/permissions.md`: the route table and what each caller is shown of mail, both rendered
from the code that decides them (`permissions.PERMISSIONS`, `mailsync_shared.visibility`)."""

from collections.abc import Sequence
from typing import get_args

from pydantic import BaseModel

from mailsync_api.permissions import ROLE_SCOPES, ROLES, SCOPES, render_markdown
from mailsync_api.principal import Principal
from mailsync_api.schemas.threads import MessageOut, ThreadOut
from mailsync_shared.storage.documents import Visibility
from mailsync_shared.visibility import (
    METADATA_FIELDS,
    SUBJECT_FIELDS,
    Access,
    MailboxShare,
    Viewer,
    sight,
)

VISIBILITIES: tuple[Visibility, ...] = get_args(Visibility)
SOMEONE_ELSE = "another-person"


def callers() -> list[tuple[str, Principal]]:
    """A person of each role, and a system key with each scope."""
    people = [
        (f"{role}", Principal("ws", f"key-{role}", f"user-{role}", role, ROLE_SCOPES[role]))
        for role in ROLES
    ]
    keys = [
        (f"API key (`{scope}`)", Principal("ws", f"key-{scope}", None, None, frozenset({scope})))
        for scope in SCOPES
    ]
    return people + keys


def shown(viewer: Viewer, owner: str | None, visibility: Visibility, private: bool) -> str:
    seen = sight(viewer, [MailboxShare(owner, visibility)], private=private)
    level = seen.level.name.lower()
    return f"{level}, Bcc" if seen.bcc else level


def _fields(level: Access, models: Sequence[type[BaseModel]]) -> str:
    allowed = SUBJECT_FIELDS if level is Access.SUBJECT else METADATA_FIELDS
    names = dict.fromkeys(
        (field.alias or name)
        for model in models
        for name, field in model.model_fields.items()
        if name in allowed or field.alias in allowed
    )
    return ", ".join(f"`{name}`" for name in names if name not in ("access", "messages"))


def visibility_markdown() -> str:
    """Per caller, mailbox visibility and ownership: what is shown of a mailbox's mail."""
    lines = [
        "## What each caller is shown of mail",
        "",
        "Decided per message by `mailsync_shared.visibility.sight`, from the mailboxes the "
        "message was seen in and whether its thread was made private; roles and scopes widen "
        "nothing. A message seen in several mailboxes is shown at the most open of their "
        "levels. A thread is made of the messages the caller may see: its subject (the oldest "
        "one shown with its subject), participants, mailboxes, count and dates come from those "
        "only, and a thread with no such message does not exist for the caller (404, absent "
        "from lists, searches, timelines and exports). Replies and forwards take only messages "
        "shown in full. A mailbox connected by an API key is owned by the workspace's API keys.",
        "",
        "Levels: **nothing**; **metadata**: "
        + _fields(Access.METADATA, [ThreadOut, MessageOut])
        + "; **subject**: metadata and "
        + "`subject`; **everything**: every field, the body included. **Bcc** recipients are "
        "shown to the mailbox's owner only, never at any level to anyone else (nor in a "
        "thread's participants, a search by participant, capture decisions or a send "
        "request's `bcc`). A mailbox's folder totals and skipped count are shown to those it "
        "shares at least metadata with.",
        "",
    ]
    header = " | ".join(f"`{v}`" for v in VISIBILITIES)
    for private in (False, True):
        lines += [
            "### " + ("A thread made private" if private else "An open thread"),
            "",
            f"| Caller | Owns the mailbox | {header} |",
            "| --- | --- |" + " --- |" * len(VISIBILITIES),
        ]
        for name, principal in callers():
            own = principal.user_id
            for owner, owns in ((own, "yes"), (SOMEONE_ELSE, "no")):
                cells = " | ".join(shown(principal.viewer, owner, v, private) for v in VISIBILITIES)
                lines.append(f"| {name} | {owns} | {cells} |")
        lines.append("")
    return "\n".join(lines)


def permissions_markdown() -> str:
    """The whole of `docs/permissions.md`."""
    return render_markdown() + "\n" + visibility_markdown()
