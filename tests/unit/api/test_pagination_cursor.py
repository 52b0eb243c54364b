"""Cursors are opaque round-trips of the last item's sort value and id."""

from datetime import UTC, datetime

import pytest

from mailsync_api.pagination import after_cursor, decode_cursor, encode_cursor
from mailsync_api.problems import ProblemError


def test_a_datetime_cursor_round_trips() -> None:
    at = datetime(2025, 3, 1, 9, 30, 15, 123000, tzinfo=UTC)

    assert decode_cursor(encode_cursor(at, "abc")) == (at, "abc")


def test_a_null_sort_value_round_trips() -> None:
    assert decode_cursor(encode_cursor(None, "abc")) == (None, "abc")


@pytest.mark.parametrize("cursor", ["garbage", "", "eyJ4IjoxfQ", "W10", "eyJ2IjpbXSwiaSI6ImEifQ"])
def test_foreign_cursors_are_a_422_on_the_cursor_parameter(cursor: str) -> None:
    with pytest.raises(ProblemError) as raised:
        decode_cursor(cursor)

    assert raised.value.status == 422
    assert raised.value.extensions["invalid_params"][0]["name"] == "query.cursor"


def test_after_a_dated_item_come_older_items_ties_with_lower_ids_and_undated_ones() -> None:
    at = datetime(2025, 3, 1, tzinfo=UTC)

    assert after_cursor("last_message_at", at, "m") == {
        "$or": [
            {"last_message_at": {"$lt": at}},
            {"last_message_at": at, "_id": {"$lt": "m"}},
            {"last_message_at": None},
        ]
    }


def test_after_an_undated_item_come_only_undated_items_with_lower_ids() -> None:
    assert after_cursor("last_message_at", None, "m") == {
        "$or": [{"last_message_at": None, "_id": {"$lt": "m"}}]
    }
