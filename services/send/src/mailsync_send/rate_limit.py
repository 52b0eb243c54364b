"""Sending at most so many messages per minute per mailbox, counted in the store.

Sends in a minute are counted in numbered blocks of slots: a document whose `_id` is the
mailbox, the minute and the block number, inserted only if absent. A unique `_id` is the one
guarantee the store gives under concurrency, so every worker of every replica shares the count
exactly. The process that inserts a block hands out its slots itself, so a send writes nothing
unless it opens a block. A block holds a fiftieth of the limit (one slot under 100 a minute):
a replica leaves at most one part-used block a minute unused. Blocks of past minutes are
removed by whoever opens a new minute. A request that finds the minute full is not dropped but
deferred to the next one.
"""

import asyncio
from datetime import UTC, datetime, timedelta

from pymongo.errors import DuplicateKeyError

from mailsync_shared.storage.ferretdb import retry_locked
from mailsync_shared.storage.scoped import WorkspaceStore

SEND_SLOTS = "send_slots"
WINDOW = timedelta(minutes=1)
BLOCKS_PER_LIMIT = 50
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def window_start(now: datetime) -> datetime:
    aware = now if now.tzinfo else now.replace(tzinfo=UTC)
    return _EPOCH + WINDOW * ((aware - _EPOCH) // WINDOW)


def block_size(limit: int) -> int:
    return max(1, limit // BLOCKS_PER_LIMIT)


class SendSlots:
    """Takes send slots; remembers, per mailbox and minute, the next block number to try and the
    slots left in the block this process holds."""

    def __init__(self) -> None:
        self._next_block: dict[str, int] = {}
        self._left: dict[str, int] = {}
        self._opening: dict[str, asyncio.Lock] = {}

    async def take(
        self, store: WorkspaceStore, mailbox_id: str, *, limit: int, now: datetime
    ) -> datetime | None:
        """Take a slot in the current minute: None if taken, else when the next minute opens."""
        window = window_start(now)
        key = f"{mailbox_id}:{int(window.timestamp())}"
        if key not in self._next_block and len(self._next_block) > 10_000:
            self._next_block.clear()
            self._left.clear()
            self._opening.clear()
        if self._take_held(key):
            return None
        # One block opened at a time per key, so concurrent sends share it instead of racing.
        async with self._opening.setdefault(key, asyncio.Lock()):
            if self._take_held(key):
                return None
            size = block_size(limit)
            slots = store.collection(SEND_SLOTS)
            while (number := self._next_block.get(key, 0)) * size < limit:
                self._next_block[key] = number + 1
                block = {"_id": f"{key}:{number}", "mailbox_id": mailbox_id, "window": window}
                try:
                    await retry_locked(lambda: slots.insert_one(block))  # noqa: B023
                except DuplicateKeyError:
                    continue  # taken by another process
                if number == 0:
                    await slots.delete_many({"mailbox_id": mailbox_id, "window": {"$lt": window}})
                self._left[key] = min(size, limit - number * size) - 1
                return None
        return window + WINDOW

    def _take_held(self, key: str) -> bool:
        if self._left.get(key, 0) > 0:
            self._left[key] -= 1
            return True
        return False
