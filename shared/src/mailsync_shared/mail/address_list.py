"""Address lists (RFC 5322 3.4) read in one loop, without recursion, however long the header.

`email.utils.getaddresses` recurses on long headers (a To of a few thousand lines raises
`RecursionError`), turns `a@b <c@d>` into two addresses and reads `a@x b@y` as none. Here a
display name never becomes an address: the address is the `<...>` part when there is one, and
otherwise each bare addr-spec of the entry is an address of its own. Comments are dropped from
names and used as the name only when there is nothing else. White space and comments inside an
address (`<pete(his account)@silly.test>`, obsolete `jdoe@test . example`) are dropped, as
RFC 5322's CFWS allows them there. The text is handled as Latin-1, so
every byte maps to one character and the caller decodes names and addresses afterwards.
"""

import re
from dataclasses import dataclass

_ADDR_SPEC = re.compile(r"^[^@\s<>()\[\],;:\"\\]+@[^@\s<>()\[\],;:\"\\]+$")
_GROUP_START = re.compile(r'^[^"<>@,()]*:(?!:)')
_AROUND_DOTS = re.compile(r"\s*([.@])\s*")


@dataclass(frozen=True)
class ParsedAddress:
    name: str
    address: str


def parse_address_list(value: str, max_addresses: int) -> tuple[list[ParsedAddress], bool]:
    """The addresses of `value` in order, at most `max_addresses`; True when more were there."""
    found: list[ParsedAddress] = []
    for entry in _entries(value):
        for parsed in _entry_addresses(entry):
            if len(found) >= max_addresses:
                return found, True
            found.append(parsed)
    return found, False


def _entries(value: str) -> list[str]:
    """The value split at commas and semicolons outside quotes, comments and angle brackets."""
    entries: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    comment_depth = 0
    angle = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and (quoted or comment_depth):
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif comment_depth:
            comment_depth += {"(": 1, ")": -1}.get(char, 0)
        elif char == '"':
            quoted = True
        elif char == "(":
            comment_depth = 1
        elif char == "<":
            angle = True
        elif char == ">":
            angle = False
        elif char in ",;" and not angle:
            entries.append("".join(current))
            current = []
            continue
        current.append(char)
    entries.append("".join(current))
    return [entry for entry in (e.strip() for e in entries) if entry]


def _entry_addresses(entry: str) -> list[ParsedAddress]:
    text, comments = _without_comments(entry)
    text = _GROUP_START.sub("", text, count=1).strip()
    opening = _outside_quotes_index(text, "<")
    if opening >= 0:
        closing = text.find(">", opening)
        inside = text[opening + 1 : closing if closing >= 0 else len(text)]
        route_free = inside.rsplit(":", 1)[-1]  # obsolete source route `<@a,@b:x@y>`
        address = "".join(route_free.split())
        name = _unquote(text[:opening]) or " ".join(comments)
        return [ParsedAddress(name, address)] if _ADDR_SPEC.match(address) else []
    words = [_unquote(word) for word in _words(_AROUND_DOTS.sub(r"\1", text))]
    addresses = [word for word in words if _ADDR_SPEC.match(word)]
    name = " ".join(comments) if len(addresses) == 1 else ""
    return [ParsedAddress(name, address) for address in addresses]


def _without_comments(text: str) -> tuple[str, list[str]]:
    kept: list[str] = []
    comments: list[str] = []
    comment: list[str] = []
    depth = 0
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
            (comment if depth else kept).append(char)
            continue
        if char == "\\" and (quoted or depth):
            escaped = True
            if quoted:
                kept.append(char)
            continue
        if depth:
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth:
                comment.append(char)
            else:
                comments.append(" ".join("".join(comment).split()))
                comment = []
                kept.append(" ")
            continue
        if char == '"':
            quoted = not quoted
        elif char == "(" and not quoted:
            depth = 1
            continue
        kept.append(char)
    return "".join(kept), [c for c in comments if c]


def _outside_quotes_index(text: str, wanted: str) -> int:
    quoted = escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == wanted and not quoted:
            return index
    return -1


def _words(text: str) -> list[str]:
    words: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char.isspace() and not quoted:
            if current:
                words.append("".join(current))
                current = []
            continue
        current.append(char)
    if current:
        words.append("".join(current))
    return words


def _unquote(text: str) -> str:
    """A display name with its quotes and quoted-pair backslashes removed, spaces collapsed."""
    out: list[str] = []
    escaped = False
    for char in text.strip():
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char != '"':
            out.append(char)
    return " ".join("".join(out).split())
