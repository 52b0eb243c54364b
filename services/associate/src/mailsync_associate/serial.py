"""One message at a time per workspace within this process.

Threading reads and then writes: a reply and its parent handled at the same moment could
each start a thread of their own. Serializing per workspace prevents that inside one
process while different workspaces still run in parallel.
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
