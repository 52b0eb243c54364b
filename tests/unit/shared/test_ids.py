"""Ids are the UUIDs the standard library would make, only cheaper to make."""

import uuid

import pytest

from mailsync_shared.ids import new_id, stable_id

NAMESPACE = uuid.UUID("5b0e2a57-6f1c-4a53-9d0e-6d61696c7379")


@pytest.mark.parametrize(
    "parts",
    [
        ("message", "ws1", "<a@b>"),
        ("thread", "w" * 40, "<ünïcödé@例え.jp>"),
        ("",),
        ("ref", "ws", "subject", "re: hello\x00\n"),
    ],
)
def test_a_stable_id_is_uuid5_of_the_joined_parts(parts: tuple[str, ...]) -> None:
    assert stable_id(*parts) == uuid.uuid5(NAMESPACE, "\x1f".join(parts)).hex


def test_stable_ids_are_the_same_for_the_same_parts_only() -> None:
    assert stable_id("a", "b") == stable_id("a", "b")
    assert stable_id("a", "b") != stable_id("b", "a")


def test_a_new_id_is_a_random_version_4_uuid() -> None:
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    for each in list(ids)[:50]:
        parsed = uuid.UUID(hex=each)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert parsed.hex == each
