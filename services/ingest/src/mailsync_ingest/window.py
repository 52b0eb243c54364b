"""Which UIDs to fetch: the backfill window and the UID SEARCH criteria, as pure functions.

IMAP `SINCE` compares dates only (no time, server's time zone), so a window that must start
at an instant (a mailbox that imports only mail arriving after it was connected) is searched
from that day and then filtered on each message's INTERNALDATE.
"""

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailsync_shared.storage.documents import SyncPolicy

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True)
class Window:
    """Start of the backfill window; `exact` means filter on INTERNALDATE, not only the day."""

    since: datetime
    exact: bool


def backfill_window(policy: SyncPolicy, *, connected_at: datetime, now: datetime) -> Window:
    if policy.backfill_days is None:
        return Window(since=connected_at, exact=True)
    return Window(since=now - timedelta(days=policy.backfill_days), exact=False)


def imap_date(moment: datetime) -> str:
    """`05-Mar-2025`: the IMAP date format, independent of the process locale."""
    return f"{moment.day:02d}-{_MONTHS[moment.month - 1]}-{moment.year}"


def backfill_criteria(since: datetime, below_uid: int) -> list[str] | None:
    """`UID SEARCH` criteria for window messages under `below_uid`; None when nothing is left."""
    if below_uid <= 1:
        return None
    return ["UID", f"1:{below_uid - 1}", "SINCE", imap_date(since)]


def new_mail_criteria(last_uid: int) -> list[str]:
    return ["UID", f"{last_uid + 1}:*"]


def newer_than(uids: Iterable[int], last_uid: int) -> list[int]:
    """Ascending UIDs above the checkpoint; `n:*` also matches the last message when no UID
    reaches n, so the server's answer alone is not enough."""
    return sorted(uid for uid in set(uids) if uid > last_uid)


def newest_first(uids: Iterable[int], below_uid: int) -> list[int]:
    return sorted((uid for uid in set(uids) if uid < below_uid), reverse=True)


def batches(uids: Sequence[int], size: int) -> list[list[int]]:
    return [list(uids[start : start + size]) for start in range(0, len(uids), size)]


def batches_within(
    uids: Sequence[int], sizes: Mapping[int, int], *, count: int, max_bytes: int
) -> list[list[int]]:
    """Consecutive batches of at most `count` UIDs and `max_bytes` (by the sizes known; a
    message larger than `max_bytes` goes alone)."""
    planned: list[list[int]] = []
    current: list[int] = []
    held = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if current and (len(current) >= count or held + size > max_bytes):
            planned.append(current)
            current, held = [], 0
        current.append(uid)
        held += size
    if current:
        planned.append(current)
    return planned


def contiguous_done(ordered_uids: Sequence[int], done: Collection[int]) -> int | None:
    """The last UID of the longest prefix of `ordered_uids` that is all done, or None."""
    last: int | None = None
    for uid in ordered_uids:
        if uid not in done:
            break
        last = uid
    return last
