"""Handling a queue's deliveries together, a batch at a time per key (usually a workspace).

Each delivery's handler submits its item and waits for its own result, so the broker's ack
still follows the write. A key's batch starts as soon as nothing of that key is being
processed: a lone message goes through at once, and whatever arrives meanwhile forms the
next batch (up to `max_size`), in the order submitted. Batches of one key never overlap;
different keys run in parallel.

Every submitted item gets an outcome: its own, or the batch's exception when processing the
batch raises (or returns a wrong number of outcomes). An item whose submitter stopped
waiting (cancelled) before its batch started is left out of it.
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
        if max_size < 1:
            raise ValueError("a batch holds at least one item")
        self._process = process
        self._max_size = max_size
        self._pending: dict[str, list[tuple[ItemT, asyncio.Future[ResultT]]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}

    async def submit(self, key: str, item: ItemT) -> ResultT:
        """Queue the item under `key` and wait for its outcome."""
        return await self._enqueue(key, item)

    async def submit_all(self, key: str, items: Sequence[ItemT]) -> list[ResultT | BaseException]:
        """Queue the items under `key`, in order, and wait for every outcome."""
        futures = [self._enqueue(key, item) for item in items]
        return await asyncio.gather(*futures, return_exceptions=True)

    def _enqueue(self, key: str, item: ItemT) -> asyncio.Future[ResultT]:
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, []).append((item, future))
        if key not in self._workers:
            self._workers[key] = asyncio.create_task(self._work(key))
        return future

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
            # Items are left only when this worker was cancelled (the loop is closing).
            for _, future in self._pending.pop(key, []):
                future.cancel()

    async def _run(self, key: str, batch: list[tuple[ItemT, asyncio.Future[ResultT]]]) -> None:
        outcomes: Sequence[ResultT | BaseException]
        try:
            outcomes = await self._process(key, [item for item, _ in batch])
            if len(outcomes) != len(batch):
                raise RuntimeError(f"{len(outcomes)} outcomes for a batch of {len(batch)}")
        except Exception as error:  # every item of the batch fails with it
            outcomes = [error] * len(batch)
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
