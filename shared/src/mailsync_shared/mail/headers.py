"""Header values that cross from one message into another.

Python 3.11.7's `email` package turns an encoded CR/LF inside a decoded header into a real
header line when the value is copied into an outgoing message (CVE-2024-6923). Every value
copied from inbound mail into outbound headers goes through `single_line` first.

A line break here is every character `str.splitlines` breaks on (CR, LF, VT, FF, FS, GS, RS,
NEL, U+2028, U+2029), not only CR and LF: the `email` package refuses a header value holding
any of them with `ValueError`.
"""

import re

_LINE_BREAKS = re.compile("[\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]+")
_MESSAGE_IDS = re.compile(r"<[^<>\s]+>")


def single_line(value: str) -> str:
    """The value with line breaks and NUL replaced by a space (runs collapse to one)."""
    return _LINE_BREAKS.sub(" ", value).strip()


def has_line_break(value: str) -> bool:
    return _LINE_BREAKS.search(value) is not None


def message_ids(value: str | None) -> list[str]:
    """Every `<id>` token in a `Message-ID`, `In-Reply-To` or `References` value, in order."""
    if not value:
        return []
    return _MESSAGE_IDS.findall(single_line(value))
