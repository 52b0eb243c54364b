"""Reading a raw header block the way mail servers do, keeping every header that is there.

The standard library's compat32 header parser stops at the first line that is not a header (a
stray line, obsolete `From  :`, a byte-order mark) and makes the rest body, and it turns raw
8-bit bytes into surrogates or U+FFFD. This reader is a single linear pass instead:

- a leading UTF-8 byte-order mark is dropped;
- lines end at LF or CRLF; a lone CR inside a line is read as a space, not as the block's end;
- `Name  :` (white space before the colon, RFC 5322 obsolete syntax) is a header;
- a line that is neither a header nor a continuation is skipped, and the headers after it kept;
- each header keeps at most `max_value_bytes`; a longer one is cut there (`header_truncated`)
  and the headers after it are read as usual;
- values stay bytes until they are decoded: raw 8-bit text is UTF-8 (RFC 6532) when it is valid
  UTF-8, otherwise cp1252 (`charset_replaced`); RFC 2047 encoded words are decoded with their
  declared charset (under the name Python knows it by: GB2312 as GB18030, ISO-8859-8-I as
  ISO-8859-8, ISO-2022-JP with Microsoft's extensions, ...), then UTF-8, then cp1252, never to
  an escape sequence; a 7-bit word that its 7-bit charset cannot fully decode keeps what it
  can, with U+FFFD for the rest.
"""

import base64
import binascii
import codecs
import contextlib
import re
from dataclasses import dataclass, field

_BOM = b"\xef\xbb\xbf"
_LINE = re.compile(rb"\r?\n")
_FIELD = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?]*)\?=")
_BETWEEN_WORDS = re.compile(rb"^[ \t\r\n]+$")
_Q_ESCAPE = re.compile(rb"=([0-9A-Fa-f]{2})")
# Names mail uses for charsets Python knows under another name, or reads only as a subset:
# GB2312 and GBK text is routinely GB18030, ISO-8859-8-I is ISO-8859-8 in logical order.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-8-e": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-6-e": "iso-8859-6",
    "ks_c_5601-1987": "cp949",
    "windows-874": "cp874",
    "csiso2022jp": "iso-2022-jp",
    "iso2022jp": "iso-2022-jp",
}

HEADER_TRUNCATED = "header_truncated"
CHARSET_REPLACED = "charset_replaced"
HEADER_LINE_SKIPPED = "header_line_skipped"


@dataclass
class HeaderFields:
    """A message's headers in order, values as raw bytes (unfolded), and what was odd."""

    fields: list[tuple[str, bytes]] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)

    def get_all(self, name: str) -> list[bytes]:
        wanted = name.lower()
        return [value for key, value in self.fields if key == wanted]

    def get(self, name: str) -> bytes | None:
        values = self.get_all(name)
        return values[0] if values else None

    def note(self, defect: str) -> None:
        if defect not in self.defects:
            self.defects.append(defect)


def read_header_block(block: bytes, max_value_bytes: int) -> HeaderFields:
    """The headers of `block` (the bytes before the first empty line, or all of them)."""
    headers = HeaderFields()
    if block.startswith(_BOM):
        block = block[len(_BOM) :]
    name: str | None = None
    value: list[bytes] = []
    size = 0

    def finish() -> None:
        if name is not None:
            headers.fields.append((name, b"".join(value).strip()))

    for line in _LINE.split(block):
        if not line:
            break
        line = line.replace(b"\r", b" ")
        if line[:1] in (b" ", b"\t"):
            if name is None:
                headers.note(HEADER_LINE_SKIPPED)
                continue
            piece = line
        else:
            match = _FIELD.match(line)
            if match is None:
                headers.note(HEADER_LINE_SKIPPED)
                continue
            finish()
            name = match.group(1).decode("ascii").lower()
            value, size = [], 0
            piece = line[match.end() :]
        if size + len(piece) > max_value_bytes:
            if size < max_value_bytes:
                value.append(piece[: max_value_bytes - size])
                size = max_value_bytes
                headers.note(HEADER_TRUNCATED)
            continue
        value.append(piece)
        size += len(piece)
    finish()
    return headers


def decode_raw(data: bytes, defects: list[str] | None = None) -> str:
    """Raw header bytes as text: UTF-8 when valid (RFC 6532), otherwise cp1252."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        if defects is not None and CHARSET_REPLACED not in defects:
            defects.append(CHARSET_REPLACED)
        return _cp1252(data)


def decode_words(data: bytes, defects: list[str] | None = None) -> str:
    """A header value with its RFC 2047 encoded words decoded; white space between two
    adjacent encoded words is dropped, as the RFC says."""
    parts: list[str] = []
    position = 0
    previous_was_word = False
    for match in _ENCODED_WORD.finditer(data):
        between = data[position : match.start()]
        if between and not (previous_was_word and _BETWEEN_WORDS.match(between)):
            parts.append(decode_raw(between, defects))
        charset, encoding, payload = match.groups()
        parts.append(_decode_word(charset, encoding, payload, defects))
        position = match.end()
        previous_was_word = True
    parts.append(decode_raw(data[position:], defects))
    return "".join(parts)


def _decode_word(charset: bytes, encoding: bytes, payload: bytes, defects: list[str] | None) -> str:
    if encoding in (b"b", b"B"):
        try:
            decoded = base64.b64decode(payload + b"=" * (-len(payload) % 4))
        except (binascii.Error, ValueError):
            decoded = payload
    else:
        decoded = _Q_ESCAPE.sub(lambda m: bytes([int(m.group(1), 16)]), payload.replace(b"_", b" "))
    declared = charset.split(b"*", 1)[0].decode("ascii", "replace").strip().lower()
    declared = _CHARSET_ALIASES.get(declared, declared)
    if declared == "iso-2022-jp":
        with contextlib.suppress(UnicodeDecodeError):
            return decoded.decode(declared)
        with contextlib.suppress(UnicodeDecodeError):
            return _cp50220(decoded)
    for candidate in (declared, "utf-8"):
        if candidate == "utf-8" and decoded.isascii() and _known(declared):
            # 7-bit text in a 7-bit charset (ISO-2022-JP) that does not quite decode: its
            # escape sequences would pass as ASCII; the declared charset reads most of it.
            if defects is not None and CHARSET_REPLACED not in defects:
                defects.append(CHARSET_REPLACED)
            return decoded.decode(declared, errors="replace")
        try:
            return decoded.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    if defects is not None and CHARSET_REPLACED not in defects:
        defects.append(CHARSET_REPLACED)
    return _cp1252(decoded)


def _cp50220(data: bytes) -> str:
    """ISO-2022-JP as Microsoft writes it (CP50220: NEC row 13 such as `№` and `①`, which the
    strict codec refuses): each two-byte JIS character is moved to Shift_JIS and read as cp932."""
    out = bytearray()
    double = False
    index = 0
    while index < len(data):
        escape = data[index : index + 3]
        if escape in (b"\x1b$B", b"\x1b$@"):
            double, index = True, index + 3
        elif escape in (b"\x1b(B", b"\x1b(J"):
            double, index = False, index + 3
        elif double and index + 1 < len(data):
            first, second = data[index], data[index + 1]
            out.append(((first + 1) >> 1) + (0x70 if first <= 0x5E else 0xB0))
            if first % 2:
                out.append(second + (0x1F if second <= 0x5F else 0x20))
            else:
                out.append(second + 0x7E)
            index += 2
        else:
            out.append(data[index])
            index += 1
    return bytes(out).decode("cp932")


def _known(charset: str) -> bool:
    try:
        codecs.lookup(charset)
    except LookupError:
        return False
    return True


def _cp1252(data: bytes) -> str:
    # cp1252 leaves five bytes undefined; they are read as Latin-1 rather than lost.
    return "".join(
        data[i : i + 1].decode("cp1252", errors="replace")
        if data[i] not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)
        else chr(data[i])
        for i in range(len(data))
    )
