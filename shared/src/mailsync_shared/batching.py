"""Handling a queue's deliveries together, a batch at a time per key (usually a workspace).

Each delivery's handler submits its item and waits for its own result, so the broker's ack
still follows the write. A key's batch starts as soon as nothing of that key is being
processed: a lone message goes through at once, and whatever arrives meanwhile forms the
next batch (up to `max_size`), in the order submitted. Batches of one key never overlap;
different keys run in parallel.

A batch may also be processed in two stages (`Batcher.in_two_stages`): the next batch of the
key starts once the first stage returns, while the second (announcing what the first wrote,
say) still runs. Only the first stages of one key never overlap.

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
Outcomes = Sequence[ResultT | BaseException]
Process = Callable[[str, Sequence[ItemT]], Awaitable[Outcomes[ResultT]]]
# The first stage of a batch, returning the second stage, which gives the outcomes.
Start = Callable[[str, Sequence[ItemT]], Awaitable[Awaitable[Outcomes[ResultT]]]]


class Batcher(Generic[ItemT, ResultT]):
    def __init__(self, process: Process[ItemT, ResultT], *, max_size: int = 200) -> None:
        self._setup(_in_one_stage(process), max_size)

    @classmethod
    def in_two_stages(
        cls, start: Start[ItemT, ResultT], *, max_size: int = 200
    ) -> "Batcher[ItemT, ResultT]":
        """A batcher whose next batch of a key starts as soon as `start` returns."""
        batcher = cls.__new__(cls)
        batcher._setup(start, max_size)
        return batcher

    def _setup(self, start: Start[ItemT, ResultT], max_size: int) -> None:
        if max_size < 1:
            raise ValueError("a batch holds at least one item")
        self._start = start
        self._max_size = max_size
        self._pending: dict[str, list[tuple[ItemT, asyncio.Future[ResultT]]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._finishing: set[asyncio.Future[Outcomes[ResultT]]] = set()

    async def submit(self, key: str, item: ItemT) -> ResultT:
        """Queue the item under `key` and wait for its outcome."""
        return await self.put(key, item)

    async def submit_all(self, key: str, items: Sequence[ItemT]) -> list[ResultT | BaseException]:
        """Queue the items under `key`, in order, and wait for every outcome."""
        return await self.put_all(key, items)

    def put_all(
        self, key: str, items: Sequence[ItemT]
    ) -> asyncio.Future[list[ResultT | BaseException]]:
        """Queue the items under `key`, in order, now: every outcome, to await."""
        futures = [self.put(key, item) for item in items]
        return asyncio.gather(*futures, return_exceptions=True)

    def put(self, key: str, item: ItemT) -> asyncio.Future[ResultT]:
        """Queue the item under `key` now: its outcome, to await."""
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
        try:
            finishing = await self._start(key, [item for item, _ in batch])
        except Exception as error:  # every item of the batch fails with it
            _settle(batch, [error] * len(batch))
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        second = asyncio.ensure_future(finishing)
        self._finishing.add(second)
        second.add_done_callback(self._finishing.discard)
        second.add_done_callback(lambda done: _settle(batch, _outcomes(done, len(batch))))


def _in_one_stage(process: Process[ItemT, ResultT]) -> Start[ItemT, ResultT]:
    async def start(key: str, items: Sequence[ItemT]) -> Awaitable[Outcomes[ResultT]]:
        finished: asyncio.Future[Outcomes[ResultT]] = asyncio.get_running_loop().create_future()
        finished.set_result(await process(key, items))
        return finished

    return start


def _outcomes(done: asyncio.Future[Outcomes[ResultT]], expected: int) -> Outcomes[ResultT]:
    if done.cancelled():
        return [asyncio.CancelledError()] * expected
    error = done.exception()
    if error is not None:
        return [error] * expected
    outcomes = done.result()
    if len(outcomes) != expected:
        return [RuntimeError(f"{len(outcomes)} outcomes for a batch of {expected}")] * expected
    return outcomes


def _settle(
    batch: list[tuple[ItemT, asyncio.Future[ResultT]]], outcomes: Outcomes[ResultT]
) -> None:
    for (_, future), outcome in zip(batch, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, asyncio.CancelledError):
            future.cancel()
        elif isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
