"""The readable text of a message, for the record timeline and search.

Only the text/plain part is kept (else the HTML part reduced to its text), cut at
`MAX_BODY_CHARS`. Messages above `MAX_PARSED_BYTES` are not parsed at all: a body is a
convenience, and decoding a huge or hostile message must not stall the pipeline.

The body part is chosen as `EmailMessage.get_body` chooses it, over a `compat32` parse:
that parse leaves headers undecoded, which makes it about ten times faster than
`policy.default` for the two headers a body needs (content type and disposition). Most mail
is a single part, whose body is everything after the header block: for such a message only
the header block goes through the parser (`_parse`), which is several times faster again.
"""

import logging
import re
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import Message
from email.parser import BytesParser
from html.parser import HTMLParser

MAX_BODY_CHARS = 100_000
MAX_PARSED_BYTES = 10 * 1024 * 1024

logger = logging.getLogger(__name__)

# Two line ends in a row: the header block has ended by then (the parser ends it at its first
# empty line, or earlier at a line that is not a header), and a line starts right after them.
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_HEADERS = BytesParser(policy=policy.compat32)


class _TextOfHtml(HTMLParser):
    _SKIPPED = frozenset({"script", "style", "head", "title"})
    _BREAKS = frozenset({"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "blockquote"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIPPED:
            self._skipping += 1
        elif tag in self._BREAKS:
            self.chunks.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIPPED and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.chunks.append(data)


def html_to_text(html: str) -> str:
    parser = _TextOfHtml()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.chunks).splitlines())
    return "\n".join(line for line in lines if line)


def body_text(raw: bytes) -> str:
    """The message's text, bounded; empty when there is none or it cannot be decoded."""
    if len(raw) > MAX_PARSED_BYTES:
        return ""
    try:
        message = _parse(raw)
        plain = _body(message, "plain")
        if plain is not None:
            text = _text(plain)
        else:
            html = _body(message, "html")
            text = html_to_text(_text(html)) if html is not None else ""
    except (RecursionError, LookupError, ValueError, TypeError) as error:
        logger.warning("message body not decodable", extra={"error": type(error).__name__})
        return ""
    return text[:MAX_BODY_CHARS]


def _parse(raw: bytes) -> Message:
    """The message as `message_from_bytes(raw, policy=compat32)` parses it.

    The parser reads a message that is neither multipart nor `message/*` as its headers and
    then every further line as the payload, unchanged; so the header block alone is parsed
    and the rest of the bytes appended to its payload, decoded as the parser decodes them.
    Messages of those two kinds hold parts, and are parsed whole, as is anything whose header
    block the parser reads with a defect.
    """
    found = _BLANK_LINE.search(raw)
    if found is None:
        return message_from_bytes(raw, policy=policy.compat32)
    message = _HEADERS.parsebytes(raw[: found.end()], headersonly=True)
    if message.defects or message.get_content_maintype() in {"multipart", "message"}:
        # A header block that does not read cleanly (not mail at all, or a line that ends
        # the headers early) is left to the whole parse, whose reading the tests compare.
        return message_from_bytes(raw, policy=policy.compat32)
    head = message.get_payload()
    rest = raw[found.end() :].decode("ascii", "surrogateescape")
    message.set_payload((head if isinstance(head, str) else "") + rest)
    return message


def _body(message: Message, subtype: str) -> Message | None:
    return next(_candidates(message, subtype), None)


def _candidates(part: Message, subtype: str) -> Iterator[Message]:
    """Text parts of `subtype` that are not attachments, where `get_body` looks for them:
    every part of a multipart, but only the start part of a multipart/related."""
    if part.get_content_disposition() == "attachment":
        return
    maintype, _, found = part.get_content_type().partition("/")
    if maintype == "text":
        if found == subtype:
            yield part
        return
    if maintype != "multipart" or not part.is_multipart():
        return
    parts = [p for p in part.get_payload() if isinstance(p, Message)]
    if found == "related":
        start = part.get_param("start")
        chosen = [p for p in parts if start and p.get("content-id") == start] or parts[:1]
        parts = chosen[:1]
    for subpart in parts:
        yield from _candidates(subpart, subtype)


def _text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    content = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset("ascii")
    try:
        return content.decode(charset, "replace")
    except LookupError:
        return content.decode("utf-8", "replace")
