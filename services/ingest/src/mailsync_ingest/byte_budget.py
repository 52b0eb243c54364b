"""The worker's budget of message bytes in flight: fetched from a mail server and not yet
confirmed by the broker.

Every mailbox task asks for the bytes of its next FETCH before sending it (the sizes come
from RFC822.SIZE) and gives them back once the batch is published. When the budget is spent,
fetches wait in arrival order, so a burst of large mail or one huge mailbox slows fetching
instead of growing the worker's memory. A single message larger than the whole budget is let
through alone.
"""

import asyncio
from collections import deque


class ByteBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.peak = 0
        self.waits = 0
        self._waiting: deque[tuple[int, asyncio.Future[None]]] = deque()

    def grant_for(self, size: int) -> int:
        """What a request for `size` bytes holds: at most the whole budget."""
        return max(0, min(size, self.limit))

    async def acquire(self, size: int) -> int:
        """Wait until `size` bytes fit (after everyone who asked earlier); the grant held."""
        grant = self.grant_for(size)
        if not self._waiting and self._fits(grant):
            self._take(grant)
            return grant
        self.waits += 1
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((grant, granted))
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(grant)
            else:
                self._wake()
            raise
        return grant

    def release(self, grant: int) -> None:
        self.in_flight -= grant
        self._wake()

    def _fits(self, grant: int) -> bool:
        return self.in_flight == 0 or self.in_flight + grant <= self.limit

    def _take(self, grant: int) -> None:
        self.in_flight += grant
        self.peak = max(self.peak, self.in_flight)

    def _wake(self) -> None:
        while self._waiting:
            grant, granted = self._waiting[0]
            if granted.done():
                self._waiting.popleft()
                continue
            if not self._fits(grant):
                return
            self._waiting.popleft()
            self._take(grant)
            granted.set_result(None)
