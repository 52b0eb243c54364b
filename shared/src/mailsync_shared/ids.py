"""Identifiers for stored documents."""

import uuid


def new_id() -> str:
    return uuid.uuid4().hex


_STABLE_NAMESPACE = uuid.UUID("5b0e2a57-6f1c-4a53-9d0e-6d61696c7379")


def stable_id(*parts: str) -> str:
    """The same id for the same parts, for writes and events that must not double on retry."""
    return uuid.uuid5(_STABLE_NAMESPACE, "\x1f".join(parts)).hex
