"""Handling a queue's deliveries together, a batch at a time per key (usually a workspace).

Each delivery's handler submits its item and waits for its own result, so the broker's ack
still follows the write. A key's batch starts as soon as nothing of that key is being
processed: a lone message goes through at once, and whatever arrives meanwhile forms the
next batch (up to `max_size`). Batches of one key never overlap; different keys run in
parallel.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")

# One outcome per item, in order: its result, or the exception its handler should raise.
Process = Callable[[str, Sequence[ItemT]], Awaitable[Sequence[ResultT | BaseException]]]


class Batcher(Generic[ItemT, ResultT]):
    def __init__(self, process: Process[ItemT, ResultT], *, max_size: int = 200) -> None:
        self._process = process
        self._max_size = max_size
        self._pending: dict[str, list[tuple[ItemT, asyncio.Future[ResultT]]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    async def submit(self, key: str, item: ItemT) -> ResultT:
        """Queue the item under `key` and wait for its outcome."""
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append((item, future))
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key))
        return await future

    async def _work(self, key: str) -> None:
        try:
            while pending := self._pending.get(key):
                batch = pending[: self._max_size]
                del pending[: self._max_size]
                live = [(item, future) for item, future in batch if not future.done()]
                if live:
                    await self._run(key, live)
        finally:
            del self._workers[key]
            if not self._pending.get(key):
                self._pending.pop(key, None)
            else:
                self._workers[key] = asyncio.create_task(self._work(key))

    async def _run(self, key: str, batch: list[tuple[ItemT, asyncio.Future[ResultT]]]) -> None:
        try:
            outcomes = await self._process(key, [item for item, _ in batch])
        except Exception as error:  # every item of the batch fails with it
            outcomes = [error] * len(batch)
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
