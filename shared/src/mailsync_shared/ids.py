"""Identifiers for stored documents.

Both kinds are RFC 4122 UUIDs written as 32 hex digits: random ones (version 4) and name-based
ones (version 5, SHA-1). They are built from their bytes directly: `uuid.UUID` objects cost
several times more, and ids are made for every message, thread, event and reference.
"""

import hashlib
import os
import uuid

_STABLE_NAMESPACE = uuid.UUID("5b0e2a57-6f1c-4a53-9d0e-6d61696c7379").bytes


def _as_uuid_hex(sixteen: bytes, version: int) -> str:
    """The bytes with the version and the RFC 4122 variant set, as `uuid.UUID(...).hex`."""
    marked = bytearray(sixteen)
    marked[6] = (marked[6] & 0x0F) | (version << 4)
    marked[8] = (marked[8] & 0x3F) | 0x80
    return marked.hex()


def new_id() -> str:
    """A random id (`uuid.uuid4().hex`)."""
    return _as_uuid_hex(os.urandom(16), 4)


def stable_id(*parts: str) -> str:
    """The same id for the same parts, for writes and events that must not double on retry
    (`uuid.uuid5` of the parts joined by a unit separator, in a namespace of Mailsync's)."""
    name = "\x1f".join(parts).encode()
    return _as_uuid_hex(
        hashlib.sha1(_STABLE_NAMESPACE + name, usedforsecurity=False).digest()[:16], 5
    )
