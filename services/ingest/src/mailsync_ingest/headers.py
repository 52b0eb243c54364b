"""Header-level facts of a fetched message, from its header block only.

Only the header block is read (`mailsync_shared.mail.header_block`, one linear pass that keeps
every header a mail server would see; much cheaper than a full `policy.default` parse); bodies
are left to the services that need them. Every decoded value
is reduced to one line, so an encoded CR/LF (`=?UTF-8?Q?=0D=0A?=`) can never become a header
line when the value is copied into an outgoing message later.
"""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from mailsync_shared.contracts.mail import (
    Address,
    AutomationHints,
    Direction,
    FolderRole,
    MailMessage,
    MailSource,
)
from mailsync_shared.mail.address_list import parse_address_list
from mailsync_shared.mail.header_block import (
    HeaderFields,
    decode_raw,
    decode_words,
    read_header_block,
)
from mailsync_shared.mail.headers import message_ids, single_line

SYNTHETIC_DOMAIN = "mailsync.invalid"
_IDENTITY_HEADERS = ("from", "to", "cc", "date", "subject")
MAX_HEADER_VALUE_BYTES = 256 * 1024
EARLIEST_DATE = datetime(1980, 1, 1, tzinfo=UTC)
DATE_OUT_OF_RANGE = "date_out_of_range"
ADDRESSES_CUT = "addresses_cut"


@dataclass(frozen=True)
class MessageContext:
    """Where a message was found and whose mailbox it is."""

    mailbox_id: str
    owner_address: str
    source: MailSource | None = None


def decode_text(value: bytes | str | None, defects: list[str] | None = None) -> str:
    """A header value as one line of text; undecodable words degrade, never raise."""
    if not value:
        return ""
    data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
    return single_line(decode_words(data, defects))


def addresses(
    headers: HeaderFields, name: str, max_addresses: int, defects: list[str] | None = None
) -> tuple[list[Address], bool]:
    """Every address in all `name` headers, lower-cased, in order, without repeats."""
    result: list[Address] = []
    seen: set[str] = set()
    cut = False
    for raw_value in headers.get_all(name):
        parsed, was_cut = parse_address_list(raw_value.decode("latin-1"), max_addresses)
        cut = cut or was_cut
        for entry in parsed:
            address = single_line(decode_raw(entry.address.encode("latin-1"), defects)).lower()
            if address in seen:
                continue
            if len(result) >= max_addresses:
                return result, True
            seen.add(address)
            display = decode_text(entry.name.encode("latin-1"), defects)
            result.append(Address(address=address, name=display))
    return result, cut


def synthetic_message_id(raw_id: str) -> str:
    """A `Message-ID` for a message whose headers cannot be read: from its stored bytes."""
    return f"<{raw_id}@{SYNTHETIC_DOMAIN}>"


def stable_message_id(headers: HeaderFields, body: bytes) -> str:
    """A `Message-ID` for a message without one, from what stays the same between deliveries:
    From, To, Cc, Date, Subject and the body, never trace headers (Received, Delivered-To)."""
    digest = hashlib.sha256()
    for name in _IDENTITY_HEADERS:
        for value in headers.get_all(name):
            digest.update(name.encode() + b":" + b" ".join(value.split()) + b"\n")
    digest.update(hashlib.sha256(body).digest())
    return f"<{digest.hexdigest()}@{SYNTHETIC_DOMAIN}>"


def message_date(
    headers: HeaderFields, fallback: datetime | None, defects: list[str] | None = None
) -> datetime | None:
    """The Date header; INTERNALDATE instead when it is missing, unreadable, before 1980 or
    more than a day after INTERNALDATE (recorded as `date_out_of_range`)."""
    if fallback is not None and fallback.tzinfo is None:
        fallback = fallback.replace(tzinfo=UTC)
    parsed = None
    for value in headers.get_all("date"):  # the first readable one
        try:
            parsed = parsedate_to_datetime(single_line(decode_raw(value)))
        except (TypeError, ValueError, IndexError, OverflowError):
            continue
        break
    if parsed is None:
        return fallback
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    latest = fallback + timedelta(days=1) if fallback is not None else None
    if parsed < EARLIEST_DATE or (latest is not None and parsed > latest):
        if defects is not None:
            defects.append(DATE_OUT_OF_RANGE)
        return fallback if fallback is not None else None
    return parsed


def automation_hints(headers: HeaderFields) -> AutomationHints:
    auto_submitted = decode_text(headers.get("auto-submitted")).lower() or None
    precedence = decode_text(headers.get("precedence")).lower() or None
    return AutomationHints(
        auto_submitted=auto_submitted,
        list_unsubscribe=headers.get("list-unsubscribe") is not None,
        precedence=precedence,
    )


def direction_of(folder_role: FolderRole | None, sender: Address | None, owner: str) -> Direction:
    if folder_role == "sent":
        return "sent"
    if sender is not None and sender.address == owner.lower():
        return "sent"
    return "received"


def mail_message(
    header_block: bytes,
    *,
    context: MessageContext,
    raw_id: str,
    size: int,
    internal_date: datetime | None = None,
    max_addresses: int = 1000,
    max_header_value_bytes: int = MAX_HEADER_VALUE_BYTES,
    body: bytes = b"",
    defects: tuple[str, ...] = (),
    provider_thread_id: str | None = None,
    provider_message_id: str | None = None,
) -> MailMessage:
    """The header-level facts of one message, ready to publish."""
    headers = read_header_block(header_block, max_header_value_bytes)
    found_defects = [*defects, *headers.defects]
    parsed: dict[str, list[Address]] = {}
    for name in ("from", "to", "cc", "bcc", "reply-to"):
        parsed[name], cut = addresses(headers, name, max_addresses, found_defects)
        if cut and ADDRESSES_CUT not in found_defects:
            found_defects.append(ADDRESSES_CUT)
    sender = parsed["from"][0] if parsed["from"] else None
    ids = message_ids(_header_text(headers, "message-id")) or _bare_message_id(headers)
    role = context.source.folder_role if context.source else None
    return MailMessage(
        mailbox_id=context.mailbox_id,
        owner_address=context.owner_address.lower(),
        direction=direction_of(role, sender, context.owner_address),
        source=context.source,
        raw_id=raw_id,
        size=size,
        message_id=ids[0] if ids else stable_message_id(headers, body),
        in_reply_to=message_ids(_header_text(headers, "in-reply-to")),
        references=message_ids(_header_text(headers, "references")),
        subject=decode_text(headers.get("subject"), found_defects),
        date=message_date(headers, internal_date, found_defects),
        from_=sender,
        to=parsed["to"],
        cc=parsed["cc"],
        bcc=parsed["bcc"],
        reply_to=parsed["reply-to"],
        automation=automation_hints(headers),
        provider_thread_id=provider_thread_id,
        provider_message_id=provider_message_id,
        defects=found_defects,
    )


def _bare_message_id(headers: HeaderFields) -> list[str]:
    """A `Message-ID` written without its angle brackets (`id@host`), as some mailers do."""
    value = (_header_text(headers, "message-id") or "").strip()
    if "@" in value and len(value.split()) == 1 and "<" not in value and ">" not in value:
        return [f"<{single_line(value)}>"]
    return []


def _header_text(headers: HeaderFields, name: str) -> str | None:
    value = headers.get(name)
    return None if value is None else decode_raw(value)
