"""The three questions about a connected mailbox, answered in plain words:
what gets synced, which direction it flows, and who can see it."""

from mailsync_api.schemas.mailboxes import SyncSummary
from mailsync_shared.storage.documents import MailboxDocument

# The levels of `mailsync_shared.visibility`: what others in the workspace see of this mail.
_VISIBILITY = {
    "private": "Only the mailbox owner can see this mail; others in the workspace see nothing.",
    "metadata": (
        "Everyone in the workspace sees who took part and when; only the mailbox owner sees "
        "subjects and message bodies."
    ),
    "subject": (
        "Everyone in the workspace sees who took part, when, and the subject; only the mailbox "
        "owner sees the message bodies."
    ),
    "workspace": "Everyone in the workspace sees this mail in full, bodies included.",
}


def _what(mailbox: MailboxDocument) -> str:
    if mailbox.status.state == "disconnected":
        return (
            "Nothing: the mailbox is disconnected and its credentials were erased. Mail "
            "logged before stays on the records."
        )
    if mailbox.status.state == "awaiting_approval":
        return (
            f"Nothing yet: {mailbox.address} is not the login's own address, so an admin must "
            "approve it before the mailbox is synced."
        )
    scope = (
        "Mail in the Inbox and the Sent folder"
        if mailbox.sync.scope == "all"
        else "Mail in the Inbox and the Sent folder with people who are already contacts, "
        "companies or deals,"
    )
    days = mailbox.sync.backfill_days
    if days is None or days == 0:
        window = "from the moment the mailbox was connected on; older mail is not imported."
    else:
        window = f"from the last {days} day{'s' if days != 1 else ''}, then every new message."
    return f"{scope} {window}"


def _direction(mailbox: MailboxDocument) -> str:
    if mailbox.status.state == "disconnected":
        return "Neither way: nothing is read from or sent through this mailbox any more."
    if mailbox.status.state == "awaiting_approval":
        return "Neither way until an admin approves the address."
    sent_copy = (
        " and a copy is put in its Sent folder"
        if mailbox.append_to_sent
        else "; no copy is put in its Sent folder (the server keeps its own)"
    )
    return (
        f"Both ways. Mail received at and sent from {mailbox.address} is logged on the "
        "matching records; Mailsync only reads the mailbox and never changes flags, moves or "
        f"deletes mail. Replies written in Mailsync go out from {mailbox.address} through "
        f"{mailbox.smtp.host}{sent_copy}."
    )


def sync_summary(mailbox: MailboxDocument) -> SyncSummary:
    return SyncSummary(
        what_is_synced=_what(mailbox),
        direction=_direction(mailbox),
        who_can_see=_VISIBILITY[mailbox.visibility],
    )
