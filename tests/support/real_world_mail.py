"""Real-world messages from public MIME-parser test suites, and independent readings of them.

The messages live in `tests/data/real_world/<suite>/` (sources and licences in its README.md).
A logged message is compared field by field with two readings that owe nothing to Mailsync's
header reader: Dovecot's own ENVELOPE (fetched over IMAP, its encoded words decoded here with
the standard library's `email.header`), and, for the stalwart suite, the expected values that
suite ships beside each message (`.json`).
"""

import email.header
import json
import re
import smtplib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from imapclient.response_types import Address as EnvelopeAddress
from imapclient.response_types import Envelope

from tests.support.infra import Infra

CORPUS_DIR = Path(__file__).resolve().parents[1] / "data" / "real_world"
_SPACES = re.compile(r"\s+")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?]*\?=")


@dataclass(frozen=True)
class CorpusMessage:
    name: str  # "<suite>/<file>"
    data: bytes

    @property
    def suite(self) -> str:
        return self.name.split("/", 1)[0]

    def expected_file(self) -> Path | None:
        path = (CORPUS_DIR / self.name).with_suffix(".json")
        return path if self.suite == "stalwart-mail-parser" and path.exists() else None


def corpus() -> list[CorpusMessage]:
    """Every message of the corpus, in a fixed order."""
    return [
        CorpusMessage(str(path.relative_to(CORPUS_DIR)), path.read_bytes())
        for path in sorted(CORPUS_DIR.rglob("*"))
        if path.is_file()
        and path.suffix not in (".json", ".md")
        and not path.name.startswith(("LICENSE", "COPYING", "NOTICE"))
    ]


def deliver_raw(infra: Infra, recipient: str, data: bytes) -> None:
    """Deliver the bytes exactly as they are (no line-ending repair) over LMTP."""
    with smtplib.LMTP(infra.imap_host, infra.lmtp_port) as lmtp:
        lmtp.sendmail("corpus@sender.test", [recipient], data)


@dataclass
class Reading:
    """The compared fields of one message, normalised the same way for every reader."""

    subject: str = ""
    from_: list[str] = field(default_factory=list)
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    date: datetime | None = None
    message_id: str | None = None

    def fields(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "from": self.from_,
            "to": self.to,
            "cc": self.cc,
            "date": self.date,
            "message_id": self.message_id,
        }


def text(value: str | None) -> str:
    return _SPACES.sub(" ", value or "").strip()


def _decoded(raw: bytes | None) -> str:
    """An ENVELOPE string (raw header text) with its encoded words decoded by the stdlib."""
    if not raw:
        return ""
    value = raw.decode("utf-8", "surrogateescape")
    if not _ENCODED_WORD.search(value):
        return text(value.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    try:
        return text(str(email.header.make_header(email.header.decode_header(value))))
    except (LookupError, UnicodeError, ValueError):
        return text(value)


def _envelope_addresses(addresses: tuple[EnvelopeAddress, ...] | None) -> list[str]:
    found: list[str] = []
    for address in addresses or ():
        if address.host is None or address.mailbox is None:
            continue  # the start or end of a group
        mailbox = address.mailbox.decode("utf-8", "replace")
        host = address.host.decode("utf-8", "replace")
        found.append(f"{mailbox}@{host}".lower())
    return list(dict.fromkeys(found))


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def dovecot_reading(envelope: Envelope) -> Reading:
    message_id = envelope.message_id.decode("utf-8", "replace") if envelope.message_id else None
    return Reading(
        subject=_decoded(envelope.subject),
        from_=_envelope_addresses(envelope.from_)[:1],
        to=_envelope_addresses(envelope.to),
        cc=_envelope_addresses(envelope.cc),
        date=_aware(envelope.date),
        message_id=text(message_id) or None,
    )


def logged_reading(document: dict[str, Any]) -> Reading:
    sender = document.get("from")
    return Reading(
        subject=text(document.get("subject")),
        from_=[sender["address"]] if sender else [],
        to=[a["address"] for a in document.get("to") or []],
        cc=[a["address"] for a in document.get("cc") or []],
        date=_aware(document.get("date")),
        message_id=document.get("message_id"),
    )


def _expected_addresses(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return []
    address = value.get("Address", value)
    entries: list[dict[str, Any]] = []
    if "List" in address:
        entries = address["List"]
    elif "Group" in address:
        entries = [a for group in address["Group"] for a in group.get("addresses") or []]
    return list(dict.fromkeys(e["address"].lower() for e in entries if e.get("address")))


def stalwart_reading(expected_file: Path) -> Reading:
    """The values the stalwart mail-parser suite expects for the message's top-level headers."""
    headers = json.loads(expected_file.read_text())["parts"][0]["headers"]
    reading = Reading()
    seen: set[str] = set()
    for header in headers:
        raw_name = header["name"]
        name = (raw_name if isinstance(raw_name, str) else raw_name["other"]).lower()
        name, value = name.replace("_", "-"), header["value"]
        if name in seen and name != "to" and name != "cc":
            continue
        seen.add(name)
        if name == "subject" and isinstance(value, dict) and "Text" in value:
            reading.subject = text(value["Text"])
        elif name == "from":
            reading.from_ = _expected_addresses(value)[:1]
        elif name in ("to", "cc"):
            getattr(reading, name).extend(_expected_addresses(value))
        elif name == "message-id" and isinstance(value, dict) and "Text" in value:
            reading.message_id = f"<{value['Text']}>"
        elif name == "date" and isinstance(value, dict) and "DateTime" in value:
            moment = value["DateTime"]
            try:
                naive = datetime(
                    moment["year"],
                    moment["month"],
                    moment["day"],
                    moment["hour"],
                    moment["minute"],
                    moment["second"],
                )
            except ValueError:
                continue
            offset = (moment["tz_hour"] * 60 + moment["tz_minute"]) * 60
            sign = -1 if moment.get("tz_before_gmt") else 1
            reading.date = (naive - timedelta(seconds=sign * offset)).replace(tzinfo=UTC)
    return reading


def has_body_text(data: bytes) -> bool:
    """Whether the standard library finds a non-empty text/plain or text/html body."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(data)
        body = message.get_body(preferencelist=("plain", "html"))
        return bool(body is not None and text(body.get_content()))
    except Exception:
        return False


SYNTHETIC_ID_SUFFIX = "@mailsync.invalid>"
EARLIEST = datetime(1980, 1, 1, tzinfo=UTC)


def agrees(
    name: str, ours: Any, theirs: Any, *, internal_date: datetime, defects: list[str]
) -> bool:
    """Whether a logged field agrees with an independent reading, counting the documented
    replacements (docs/ingest.md) as agreement: a synthesized `Message-ID` where there is none,
    INTERNALDATE where the Date is missing, unreadable or out of range."""
    if ours == theirs:
        return True
    if name == "message_id":
        if theirs is None:
            return str(ours).endswith(SYNTHETIC_ID_SUFFIX)
        return str(ours).strip("<>") == str(theirs).strip("<>")
    if name == "date":
        if ours != internal_date:
            return False
        if theirs is None:
            return True
        out_of_range = theirs < EARLIEST or theirs > internal_date + timedelta(days=1)
        return out_of_range and "date_out_of_range" in defects
    return False
