"""One message at a time per workspace within this process, in the order of delivery.

The broker hands a consumer many deliveries at once, each handled as its own task. Capture
keeps one workspace's messages in the order ingest published them, so associate sees them
in that order too; associate reads and then writes threads, and a reply and its parent
handled at the same moment could each start a thread of their own. `asyncio.Lock` wakes its
waiters first come, first served, so serializing per workspace keeps the delivery order,
while different workspaces still run in parallel.
"""

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class PerKeyLock:
    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock = self._locks.get(key)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[key] = lock
        async with lock:
            yield
