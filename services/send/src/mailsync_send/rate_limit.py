"""Sending at most so many messages per minute per mailbox, counted in the store.

Each send in a minute takes a numbered slot: a document whose `_id` is the mailbox, the minute
and the slot number, inserted only if absent. A unique `_id` is the one guarantee the store
gives under concurrency, so every worker of every replica shares the count exactly. Slots of
past minutes are removed by whoever opens a new minute. A request that finds the minute full is
not dropped but deferred to the next one.
"""

from datetime import UTC, datetime, timedelta

from pymongo.errors import DuplicateKeyError

from mailsync_shared.storage.scoped import WorkspaceStore

SEND_SLOTS = "send_slots"
WINDOW = timedelta(minutes=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(now: datetime) -> datetime:
    aware = now if now.tzinfo else now.replace(tzinfo=UTC)
    return _EPOCH + WINDOW * ((aware - _EPOCH) // WINDOW)


class SendSlots:
    """Takes send slots; remembers the next free number per mailbox and minute in this process,
    so its own concurrent sends do not race each other for the same slot."""

    def __init__(self) -> None:
        self._next: dict[str, int] = {}

    async def take(
        self, store: WorkspaceStore, mailbox_id: str, *, limit: int, now: datetime
    ) -> datetime | None:
        """Take a slot in the current minute: None if taken, else when the next minute opens."""
        window = window_start(now)
        key = f"{mailbox_id}:{int(window.timestamp())}"
        if key not in self._next and len(self._next) > 10_000:
            self._next.clear()
        slots = store.collection(SEND_SLOTS)
        while (number := self._next.get(key, 0)) < limit:
            self._next[key] = number + 1
            try:
                await slots.insert_one(
                    {"_id": f"{key}:{number}", "mailbox_id": mailbox_id, "window": window}
                )
            except DuplicateKeyError:
                continue  # taken by another process
            if number == 0:
                await slots.delete_many({"mailbox_id": mailbox_id, "window": {"$lt": window}})
            return None
        return window + WINDOW
