"""Turning a stored send request into the exact MIME message that is relayed.

Every value that becomes a header passes through `single_line`, and text values are kept from
carrying encoded words: Python 3.11's `email` package decodes `=?UTF-8?Q?=0A?=` inside a value
it is given and writes the decoded line break out as a real header line (CVE-2024-6923). The
serialized message is parsed back and refused unless it holds exactly the headers set here.

The message is a pure function of the request and the bytes it references (the Date is the
request's creation time and every MIME boundary is derived from the content), so every attempt
relays the same bytes.

Parts: the text, the sanitized HTML as its alternative, then each attachment, then the
forwarded message. A forward attaches the original as `message/rfc822` rather than quoting it
inline: the original's headers (all but its Bcc), formatting and attachments reach the
recipient intact, and the sender's own note goes in the body. The From address is the
mailbox's own or one of its verified aliases; the envelope sender stays the mailbox's address,
so bounces come back to the mailbox that sent.
"""

import hashlib
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import format_datetime

from mailsync_shared.contracts.mail import Address
from mailsync_shared.mail.headers import has_line_break, message_ids, single_line
from mailsync_shared.mail.html import sanitize_html
from mailsync_shared.storage.attachments import MAX_ATTACHMENTS_BYTES
from mailsync_shared.storage.documents import AttachmentRef, SendRequestDocument


class KeptHeaderClasses(HeaderRegistry):
    """The `email` package's header registry, keeping the class it builds for each header name:
    the stock registry builds a new class (`type(...)`) for every header set, about a third
    of the time composing a message took."""

    def __init__(self) -> None:
        super().__init__()
        self._kept: dict[str, type[BaseHeader]] = {}

    def map_to_type(self, name: str, cls: type[BaseHeader]) -> None:
        self._kept.clear()
        super().map_to_type(name, cls)

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        kept = self._kept.get(key)
        if kept is None:
            kept = self._kept[key] = super().__getitem__(name)
        return kept


# Lines may reach 998 octets (RFC 5322 2.1.1); folding at 78 would RFC 2047-encode long
# message ids in In-Reply-To/References and break threading at the recipient.
OUTBOUND_POLICY = policy.SMTP.clone(
    max_line_length=998, cte_type="7bit", header_factory=KeptHeaderClasses()
)

_ADDR_SPEC = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
_MESSAGE_ID = re.compile(r"^<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>$")
_MIME_HEADERS = ("MIME-Version", "Content-Type", "Content-Transfer-Encoding")
_CONTENT_TYPE = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")
_OCTET_STREAM = ("application", "octet-stream")


class ComposeError(ValueError):
    """The request cannot be turned into a safe message; sending it again will not help."""


@dataclass(frozen=True)
class ComposedMessage:
    """The message to relay, its bytes, and the envelope that goes with it."""

    message: EmailMessage
    data: bytes
    envelope_from: str
    recipients: tuple[str, ...]
    message_id: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    date: datetime
    from_: Address
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]


def plain_text(value: str) -> str:
    """A header text value on one line that the `email` package will not decode into more."""
    return single_line(value).replace("=?", "= ?")


def clean_address(address: Address) -> Address:
    """The address checked as a plain ASCII addr-spec, with a one-line display name."""
    spec = address.address.strip()
    if has_line_break(spec) or not _ADDR_SPEC.match(spec) or ".." in spec:
        raise ComposeError(f"not a deliverable address: {spec!r}")
    return Address(address=spec.lower(), name=plain_text(address.name))


def clean_message_id(value: str) -> str:
    if has_line_break(value) or not _MESSAGE_ID.match(value.strip()):
        raise ComposeError(f"not a valid Message-ID: {value!r}")
    return value.strip()


def thread_ids(values: list[str]) -> tuple[str, ...]:
    """Threading ids as `<id>` tokens; anything else copied from inbound mail is dropped."""
    ids = message_ids(" ".join(values))
    return tuple(dict.fromkeys(i for i in ids if _MESSAGE_ID.match(i)))


@dataclass(frozen=True)
class Attachment:
    """A stored attachment with its bytes, ready to be a MIME part."""

    ref: AttachmentRef
    data: bytes


def attachment_type(content_type: str) -> tuple[str, str]:
    """The part's type; anything odd, or a container type, is sent as opaque bytes."""
    value = content_type.strip().lower()
    if not _CONTENT_TYPE.match(value):
        return _OCTET_STREAM
    maintype, subtype = value.split("/", 1)
    if maintype in ("multipart", "message"):
        return _OCTET_STREAM
    return maintype, subtype


def compose(
    request: SendRequestDocument,
    *,
    mailbox_address: str,
    verified_aliases: Collection[str] = (),
    attachments: Sequence[Attachment] = (),
    forwarded: bytes | None = None,
    max_attachments_bytes: int = MAX_ATTACHMENTS_BYTES,
) -> ComposedMessage:
    """The MIME message for `request`, sent from the mailbox `mailbox_address`.

    Any failure is a `ComposeError`: the same request would fail the same way on every attempt,
    so it must end the request rather than leave it queued.
    """
    try:
        return _compose(
            request,
            mailbox_address=mailbox_address,
            verified_aliases=verified_aliases,
            attachments=attachments,
            forwarded=forwarded,
            max_attachments_bytes=max_attachments_bytes,
        )
    except ComposeError:
        raise
    except Exception as error:
        reason = f"cannot compose the message: {type(error).__name__}: {error}"
        raise ComposeError(reason) from error


def _compose(
    request: SendRequestDocument,
    *,
    mailbox_address: str,
    verified_aliases: Collection[str],
    attachments: Sequence[Attachment],
    forwarded: bytes | None,
    max_attachments_bytes: int,
) -> ComposedMessage:
    sender = clean_address(request.from_)
    mailbox = mailbox_address.strip().lower()
    allowed = {mailbox, *(alias.strip().lower() for alias in verified_aliases)}
    if sender.address not in allowed:
        raise ComposeError(
            "the From address is neither the sending mailbox's nor one of its verified aliases"
        )
    attached = sum(len(a.data) for a in attachments) + len(forwarded or b"")
    if attached > max_attachments_bytes:
        raise ComposeError(
            f"attachments total {attached} bytes; the limit is {max_attachments_bytes}"
        )
    for attachment in attachments:
        if attachment_id_of(attachment.data) != attachment.ref.attachment_id:
            raise ComposeError(f"attachment {attachment.ref.filename!r} does not match its id")
    to = tuple(clean_address(a) for a in request.to)
    cc = tuple(clean_address(a) for a in request.cc)
    bcc = tuple(clean_address(a) for a in request.bcc)
    recipients = tuple(dict.fromkeys(a.address for a in (*to, *cc, *bcc)))
    if not recipients:
        raise ComposeError("the request has no recipients")
    message_id = clean_message_id(request.message_id)
    in_reply_to = thread_ids(request.in_reply_to)
    references = thread_ids(request.references)
    subject = plain_text(request.subject)
    date = (
        request.created_at if request.created_at.tzinfo else request.created_at.replace(tzinfo=UTC)
    )

    message = EmailMessage(policy=OUTBOUND_POLICY)
    headers: dict[str, str | list[HeaderAddress]] = {
        "From": [_header_address(sender)],
        "To": [_header_address(a) for a in to],
        "Cc": [_header_address(a) for a in cc],
        "Subject": subject,
        "Date": format_datetime(date),
        "Message-ID": message_id,
        "In-Reply-To": " ".join(in_reply_to),
        "References": " ".join(references),
    }
    for name, value in headers.items():
        if value:
            message[name] = value
    message.set_content(request.body_text.replace("\r\n", "\n"))
    if request.body_html:
        message.add_alternative(sanitize_html(request.body_html), subtype="html")
    for attachment in attachments:
        maintype, subtype = attachment_type(attachment.ref.content_type)
        message.add_attachment(
            attachment.data,
            maintype=maintype,
            subtype=subtype,
            filename=plain_text(attachment.ref.filename) or "attachment",
        )
    if forwarded is not None:
        original = BytesParser(policy=policy.default).parsebytes(forwarded)
        # Blind copies are the original sender's to know: a forward never hands them on.
        for blind in ("Bcc", "Resent-Bcc"):
            del original[blind]
        message.add_attachment(original, filename="forwarded.eml")
    _set_boundaries(message, request, attachments, forwarded)
    data = message.as_bytes(policy=OUTBOUND_POLICY)
    _verify(data, [name for name, value in headers.items() if value], message_id, references)
    return ComposedMessage(
        message=message,
        data=data,
        envelope_from=mailbox,
        recipients=recipients,
        message_id=message_id,
        in_reply_to=in_reply_to,
        references=references,
        subject=subject,
        date=date,
        from_=sender,
        to=to,
        cc=cc,
        bcc=bcc,
    )


def _header_address(address: Address) -> HeaderAddress:
    return HeaderAddress(display_name=address.name, addr_spec=address.address)


def attachment_id_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _set_boundaries(
    message: EmailMessage,
    request: SendRequestDocument,
    attachments: Sequence[Attachment],
    forwarded: bytes | None,
) -> None:
    """Boundaries derived from the content, so every attempt serializes to the same bytes."""
    material = "\0".join(
        [
            request.id,
            request.body_text,
            request.body_html or "",
            *(a.ref.attachment_id for a in attachments),
            attachment_id_of(forwarded or b""),
        ]
    )
    digest = hashlib.sha256(material.encode()).hexdigest()
    pending: list[EmailMessage] = [message]
    index = 0
    while pending:
        part = pending.pop(0)
        # A forwarded message keeps its own boundaries: it is sent as it was received.
        if part.get_content_maintype() != "multipart":
            continue
        part.set_boundary(f"=_mailsync_{digest[:32]}_{index}")
        index += 1
        pending.extend(part.iter_parts())  # type: ignore[arg-type]


def _verify(data: bytes, names: list[str], message_id: str, references: tuple[str, ...]) -> None:
    """Refuse the bytes unless they carry exactly the intended headers, once each."""
    parsed = BytesHeaderParser(policy=policy.compat32).parsebytes(data)
    found = [name.lower() for name in parsed]
    expected = {name.lower() for name in (*names, *_MIME_HEADERS)}
    unexpected = sorted(set(found) - expected)
    repeated = sorted({name for name in found if found.count(name) > 1})
    if unexpected or repeated or parsed.defects:
        raise ComposeError(f"refusing a message with unexpected headers {unexpected + repeated}")
    if parsed["Message-ID"] != message_id:
        raise ComposeError("the Message-ID did not survive serialization")
    if tuple(message_ids(parsed.get("References"))) != references:
        raise ComposeError("References did not survive serialization")
