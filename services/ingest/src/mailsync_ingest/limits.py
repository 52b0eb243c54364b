"""The pre-parse limiter: cheap byte-level checks that run before any MIME or header parser.

Parsers are the ingest ceiling and some fall over on hostile input (a 20,000-address `To:`
takes seconds, deep nesting raises `RecursionError` or crashes native parsers). So every
fetched message is measured here first, in one linear pass over its bytes. A message over a
limit is not dropped: the bytes kept are cut where the limit was reached, the cut is recorded
as a defect, and the rest of the mailbox keeps flowing.
"""

import re
from dataclasses import dataclass

# Defect codes recorded on a message whose stored bytes were cut.
BODY_TRUNCATED = "body_truncated"
NESTING_TOO_DEEP = "nesting_too_deep"
TOO_MANY_PARTS = "too_many_parts"

_HEADER_END = re.compile(rb"\r?\n\r?\n")
# One pass finds both multipart boundary declarations and delimiter lines, in order.
_MIME_MARKERS = re.compile(
    rb'boundary\s*=\s*(?:"(?P<quoted>[^"\r\n]{1,200})"|(?P<bare>[^\s;"]{1,200}))'
    rb"|^--(?P<delimiter>[^\r\n]{1,200}?)(?P<closing>--)?[ \t]*\r?$",
    re.IGNORECASE | re.MULTILINE,
)
# Without a boundary declared anywhere, no delimiter line counts: the common single-part
# message skips the pass above (a literal search is several times faster than it).
_BOUNDARY_WORD = re.compile(rb"boundary", re.IGNORECASE)


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 50 * 1024 * 1024
    max_header_bytes: int = 256 * 1024  # per header, not per block
    max_parts: int = 1000
    max_depth: int = 30
    max_addresses: int = 1000


@dataclass(frozen=True)
class Inspection:
    """What to store and what to parse for one message, and why anything was cut."""

    data: bytes
    header_block: bytes
    original_size: int
    defects: tuple[str, ...] = ()

    @property
    def truncated(self) -> bool:
        return len(self.data) < self.original_size


def inspect_message(raw: bytes, limits: Limits) -> Inspection:
    defects: list[str] = []
    data = raw
    if len(data) > limits.max_bytes:
        data = data[: limits.max_bytes]
        defects.append(BODY_TRUNCATED)

    header_block = _header_block(data)

    cut, structure_defect = _structure_cut(data, limits)
    if structure_defect:
        data = data[:cut]
        defects.append(structure_defect)
    return Inspection(
        data=data, header_block=header_block, original_size=len(raw), defects=tuple(defects)
    )


def _header_block(data: bytes) -> bytes:
    """The bytes up to and including the first empty line (a lone CR does not end a line);
    the whole message when there is none. Size limits apply per header when it is read."""
    end = _HEADER_END.search(data)
    return data if end is None else data[: end.end()]


def _structure_cut(data: bytes, limits: Limits) -> tuple[int, str | None]:
    """Where to cut `data` so it keeps at most `max_parts` parts and `max_depth` nesting."""
    if _BOUNDARY_WORD.search(data) is None:
        return len(data), None
    open_boundaries: list[bytes] = []
    parts = 0
    for match in _MIME_MARKERS.finditer(data):
        declared = match.group("quoted") or match.group("bare")
        if declared is not None:
            open_boundaries.append(declared)
            if len(open_boundaries) > limits.max_depth:
                return _line_start(data, match.start()), NESTING_TOO_DEEP
            continue
        boundary = match.group("delimiter")
        if boundary not in open_boundaries:
            continue
        if match.group("closing"):
            while open_boundaries and open_boundaries.pop() != boundary:
                pass
            continue
        parts += 1
        if parts > limits.max_parts:
            return match.start(), TOO_MANY_PARTS
    return len(data), None


def _line_start(data: bytes, position: int) -> int:
    return data.rfind(b"\n", 0, position) + 1


def limit_addresses(value: str, max_addresses: int) -> tuple[str, bool]:
    """The header value cut after its first `max_addresses` addresses; True if it was cut."""
    if value.count("@") <= max_addresses:
        return value, False
    kept: list[str] = []
    seen = 0
    for piece in value.split(","):
        seen += piece.count("@")
        if seen > max_addresses:
            break
        kept.append(piece)
    return ",".join(kept), True
