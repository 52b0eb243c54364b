"""Turning a stored send request into the exact MIME message that is relayed.

Every value that becomes a header passes through `single_line`, and text values are kept from
carrying encoded words: Python 3.11's `email` package decodes `=?UTF-8?Q?=0A?=` inside a value
it is given and writes the decoded line break out as a real header line (CVE-2024-6923). The
serialized message is parsed back and refused unless it holds exactly the headers set here.

The message is a pure function of the request (the Date is the request's creation time and the
MIME boundary is derived from the content), so every attempt relays the same bytes.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime

from mailsync_shared.contracts.mail import Address
from mailsync_shared.mail.headers import has_line_break, message_ids, single_line
from mailsync_shared.storage.documents import SendRequestDocument

# Lines may reach 998 octets (RFC 5322 2.1.1); folding at 78 would RFC 2047-encode long
# message ids in In-Reply-To/References and break threading at the recipient.
OUTBOUND_POLICY = policy.SMTP.clone(max_line_length=998, cte_type="7bit")

_ADDR_SPEC = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
_MESSAGE_ID = re.compile(r"^<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>$")
_MIME_HEADERS = ("MIME-Version", "Content-Type", "Content-Transfer-Encoding")


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


def compose(request: SendRequestDocument, *, mailbox_address: str) -> ComposedMessage:
    """The MIME message for `request`, sent from the mailbox `mailbox_address`."""
    sender = clean_address(request.from_)
    if sender.address != mailbox_address.strip().lower():
        raise ComposeError("the From address is not the address of the sending mailbox")
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
        message.add_alternative(request.body_html, subtype="html")
        message.set_boundary(_boundary(request))
    data = message.as_bytes(policy=OUTBOUND_POLICY)
    _verify(data, [name for name, value in headers.items() if value], message_id, references)
    return ComposedMessage(
        message=message,
        data=data,
        envelope_from=sender.address,
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


def _boundary(request: SendRequestDocument) -> str:
    digest = hashlib.sha256(
        "\0".join([request.id, request.body_text, request.body_html or ""]).encode()
    ).hexdigest()
    return f"=_mailsync_{digest[:40]}"


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
