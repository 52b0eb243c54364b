"""The readable text of a message, for the record timeline and search.

Only the text/plain part is kept (else the HTML part reduced to its text), cut at
`MAX_BODY_CHARS`. Messages above `MAX_PARSED_BYTES` are not parsed at all: a body is a
convenience, and decoding a huge or hostile message must not stall the pipeline.
"""

import logging
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser

MAX_BODY_CHARS = 100_000
MAX_PARSED_BYTES = 10 * 1024 * 1024

logger = logging.getLogger(__name__)


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
        message = BytesParser(policy=policy.default).parsebytes(raw)
        if not isinstance(message, EmailMessage):
            return ""
        plain = message.get_body(preferencelist=("plain",))
        if plain is not None:
            text = str(plain.get_content())
        else:
            html = message.get_body(preferencelist=("html",))
            text = html_to_text(str(html.get_content())) if html is not None else ""
    except (RecursionError, LookupError, ValueError, TypeError) as error:
        logger.warning("message body not decodable", extra={"error": type(error).__name__})
        return ""
    return text[:MAX_BODY_CHARS]
