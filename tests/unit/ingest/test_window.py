"""Backfill window and UID query construction."""

from datetime import UTC, datetime

from mailsync_ingest.window import (
    backfill_criteria,
    backfill_window,
    batches,
    contiguous_done,
    imap_date,
    new_mail_criteria,
    newer_than,
    newest_first,
)
from mailsync_shared.storage.documents import SyncPolicy

NOW = datetime(2025, 3, 31, 12, 0, tzinfo=UTC)
CONNECTED = datetime(2025, 3, 30, 8, 30, tzinfo=UTC)


def test_window_of_days_starts_that_many_days_ago() -> None:
    window = backfill_window(SyncPolicy(backfill_days=30), connected_at=CONNECTED, now=NOW)
    assert window.since == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert window.exact is False


def test_no_backfill_starts_at_connection_exactly() -> None:
    window = backfill_window(SyncPolicy(backfill_days=None), connected_at=CONNECTED, now=NOW)
    assert window.since == CONNECTED
    assert window.exact is True


def test_backfill_search_is_uid_bounded_and_dated() -> None:
    since = datetime(2025, 3, 1, 23, 59, tzinfo=UTC)
    assert backfill_criteria(since, below_uid=501) == ["UID", "1:500", "SINCE", "01-Mar-2025"]
    assert backfill_criteria(since, below_uid=1) is None


def test_imap_date_ignores_locale() -> None:
    assert imap_date(datetime(2024, 12, 5, tzinfo=UTC)) == "05-Dec-2024"


def test_new_mail_query_and_star_range_quirk() -> None:
    assert new_mail_criteria(41) == ["UID", "42:*"]
    # `42:*` matches the highest message even when its UID is 41.
    assert newer_than([41], 41) == []
    assert newer_than([45, 42, 43], 41) == [42, 43, 45]


def test_backfill_runs_newest_first_below_the_floor() -> None:
    assert newest_first([3, 9, 5, 12], below_uid=10) == [9, 5, 3]


def test_batches_and_contiguous_progress() -> None:
    assert batches([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert contiguous_done([5, 6, 8, 9], {5, 6, 9}) == 6
    assert contiguous_done([9, 8, 5], {9, 8, 5}) == 5
    assert contiguous_done([9, 8], {8}) is None
