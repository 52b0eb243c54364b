"""Who a reply goes to and how it points back at the thread.

Every value here is copied from inbound mail into outbound headers, so each goes through
`single_line` (CVE-2024-6923: an encoded CR/LF in a decoded header becomes a real line break).
"""

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailsync_shared.contracts.mail import Address
from mailsync_shared.mail.headers import single_line
from mailsync_shared.storage.documents import MessageDocument

MAX_REFERENCES = 30
_REPLY_PREFIX = re.compile(r"^\s*re\s*(\[\d+\])?\s*:", re.IGNORECASE)


@dataclass(frozen=True)
class ReplyHeaders:
    to: list[Address]
    cc: list[Address]
    subject: str
    in_reply_to: list[str]
    references: list[str]


def reply_subject(subject: str) -> str:
    """`Re: <subject>`, without stacking a second `Re:` on one that has it."""
    clean = single_line(subject)
    if _REPLY_PREFIX.match(clean):
        return clean
    return f"Re: {clean}" if clean else "Re:"


def _clean(address: Address) -> Address:
    return Address(address=single_line(address.address).lower(), name=single_line(address.name))


def _distinct(addresses: Iterable[Address], exclude: set[str]) -> list[Address]:
    seen = set(exclude)
    result: list[Address] = []
    for address in map(_clean, addresses):
        if address.address and address.address not in seen:
            seen.add(address.address)
            result.append(address)
    return result


def reply_recipients(
    last: MessageDocument, owner: str, *, reply_all: bool
) -> tuple[list[Address], list[Address]]:
    """To: the last message's sender, or its recipients when the owner sent it.
    Cc (reply all): everyone else on it, never the owner."""
    owner = owner.lower()
    sender = last.from_
    from_owner = sender is None or sender.address.lower() == owner
    to = _distinct(last.to if from_owner else [sender] if sender else [], {owner})
    if not reply_all:
        return to, []
    others = last.cc if from_owner else [*last.to, *last.cc]
    cc = _distinct(others, {owner, *(address.address for address in to)})
    return to, cc


def reply_references(last: MessageDocument) -> tuple[list[str], list[str]]:
    """In-Reply-To: the last message's Message-ID; References: its References plus that id.

    Long chains keep the first id (the thread's root) and the most recent ones.
    """
    message_id = single_line(last.message_id)
    chain = list(dict.fromkeys(single_line(ref) for ref in [*last.references, message_id]))
    chain = [ref for ref in chain if ref]
    if len(chain) > MAX_REFERENCES:
        chain = [chain[0], *chain[-(MAX_REFERENCES - 1) :]]
    return [message_id], chain


def reply_headers(
    messages: Sequence[MessageDocument], owner: str, *, reply_all: bool
) -> ReplyHeaders:
    """Headers of a reply to the last of `messages` (oldest first), sent by `owner`."""
    last = messages[-1]
    to, cc = reply_recipients(last, owner, reply_all=reply_all)
    in_reply_to, references = reply_references(last)
    return ReplyHeaders(
        to=to,
        cc=cc,
        subject=reply_subject(last.subject),
        in_reply_to=in_reply_to,
        references=references,
    )
