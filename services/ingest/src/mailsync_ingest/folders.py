"""Which folders of a mailbox are synced, chosen from the server's LIST answer.

Folders are found by their SPECIAL-USE attribute (RFC 6154), not by name; names are a
fallback only for servers that announce no attributes. Junk, Trash and Drafts are never read.
On Gmail (X-GM-EXT-1) every message appears once in All Mail, so that is the only folder read.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailsync_shared.contracts.mail import FolderRole

ListEntry = tuple[Sequence[bytes], bytes | None, str]

_FALLBACK_SENT_NAMES = ("Sent", "Sent Items", "Sent Messages", "Sent Mail", "INBOX.Sent")
_NEVER = {b"\\junk", b"\\trash", b"\\drafts", b"\\noselect", b"\\nonexistent"}


@dataclass(frozen=True)
class Folder:
    name: str
    role: FolderRole


def _flags(entry: ListEntry) -> set[bytes]:
    return {flag.lower() for flag in entry[0]}


def choose_folders(entries: Iterable[ListEntry], *, gmail: bool) -> list[Folder]:
    listed = [entry for entry in entries if not (_flags(entry) & _NEVER)]
    if gmail:
        all_mail = [entry[2] for entry in listed if b"\\all" in _flags(entry)]
        if all_mail:
            return [Folder(all_mail[0], "all")]
    folders = [Folder(entry[2], "inbox") for entry in listed if entry[2].upper() == "INBOX"]
    sent = [entry[2] for entry in listed if b"\\sent" in _flags(entry)]
    if not sent:
        by_name = {entry[2]: entry for entry in listed}
        sent = [name for name in _FALLBACK_SENT_NAMES if name in by_name][:1]
    folders.extend(Folder(name, "sent") for name in sent[:1])
    return folders


def folder_key(name: str) -> str:
    """The folder name as a document field name (no `.` or leading `$`, reversible)."""
    return name.replace("%", "%25").replace(".", "%2E").replace("$", "%24")
