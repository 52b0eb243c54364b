"""Batches per key: order kept, keys in parallel, outcomes per item or per batch."""

import asyncio
from collections.abc import Sequence

import pytest

from mailsync_shared.batching import Batcher


class Recorder:
    """A batch processor that records its batches; `gate[key]` holds a key's batches back."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.running: set[str] = set()
        self.overlapped: list[str] = []

    async def __call__(self, key: str, items: Sequence[int]) -> list[int | BaseException]:
        if key in self.running:
            self.overlapped.append(key)
        self.running.add(key)
        try:
            self.batches.append((key, list(items)))
            if key in self.gates:
                await self.gates[key].wait()
            await asyncio.sleep(0)
            return [ValueError(f"item {item} is odd") if item % 2 else item * 10 for item in items]
        finally:
            self.running.discard(key)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_item_goes_through_at_once() -> None:
    recorder = Recorder()
    batcher: Batcher[int, int] = Batcher(recorder)

    assert await batcher.submit("ws", 2) == 20
    assert recorder.batches == [("ws", [2])]


async def test_items_arriving_meanwhile_form_the_next_batch_in_order() -> None:
    recorder = Recorder()
    recorder.gates["ws"] = asyncio.Event()
    batcher: Batcher[int, int] = Batcher(recorder)

    first = asyncio.create_task(batcher.submit("ws", 0))
    await settle()
    later = [asyncio.create_task(batcher.submit("ws", item)) for item in (2, 4, 6, 8)]
    await settle()
    assert recorder.batches == [("ws", [0])], "the next batch waits for the one in progress"

    recorder.gates["ws"].set()
    assert await asyncio.gather(first, *later) == [0, 20, 40, 60, 80]
    assert recorder.batches == [("ws", [0]), ("ws", [2, 4, 6, 8])]
    assert recorder.overlapped == []


async def test_max_size_splits_a_backlog_in_order() -> None:
    recorder = Recorder()
    recorder.gates["ws"] = asyncio.Event()
    batcher: Batcher[int, int] = Batcher(recorder, max_size=3)

    first = asyncio.create_task(batcher.submit("ws", 0))
    await settle()
    backlog = [asyncio.create_task(batcher.submit("ws", 2 * n)) for n in range(1, 9)]
    await settle()
    recorder.gates["ws"].set()
    await asyncio.gather(first, *backlog)

    assert recorder.batches == [
        ("ws", [0]),
        ("ws", [2, 4, 6]),
        ("ws", [8, 10, 12]),
        ("ws", [14, 16]),
    ]
    assert recorder.overlapped == []


async def test_keys_run_in_parallel() -> None:
    recorder = Recorder()
    recorder.gates["slow"] = asyncio.Event()
    batcher: Batcher[int, int] = Batcher(recorder)

    slow = asyncio.create_task(batcher.submit("slow", 2))
    await settle()
    assert await asyncio.wait_for(batcher.submit("fast", 4), timeout=1) == 40
    assert not slow.done(), "another key's batch in progress does not hold this one back"

    recorder.gates["slow"].set()
    assert await slow == 20


async def test_an_item_exception_fails_only_that_item() -> None:
    recorder = Recorder()
    recorder.gates["ws"] = asyncio.Event()
    batcher: Batcher[int, int] = Batcher(recorder)

    first = asyncio.create_task(batcher.submit("ws", 0))
    await settle()
    items = [asyncio.create_task(batcher.submit("ws", item)) for item in (2, 3, 4)]
    await settle()
    recorder.gates["ws"].set()
    outcomes = await asyncio.gather(first, *items, return_exceptions=True)

    assert outcomes[:2] == [0, 20]
    assert isinstance(outcomes[2], ValueError)
    assert str(outcomes[2]) == "item 3 is odd"
    assert outcomes[3] == 40
    assert recorder.batches[1] == ("ws", [2, 3, 4]), "the failing item shared its batch"


async def test_a_batch_exception_fails_every_item_of_that_batch_only() -> None:
    gate = asyncio.Event()
    calls: list[list[int]] = []

    async def process(key: str, items: Sequence[int]) -> list[int | BaseException]:
        calls.append(list(items))
        if len(calls) == 1:
            await gate.wait()
            return list(items)
        if len(calls) == 2:
            raise ConnectionError("store unreachable")
        return list(items)

    batcher: Batcher[int, int] = Batcher(process)
    first = asyncio.create_task(batcher.submit("ws", 1))
    await settle()
    failing = [asyncio.create_task(batcher.submit("ws", item)) for item in (2, 3)]
    await settle()
    gate.set()
    outcomes = await asyncio.gather(first, *failing, return_exceptions=True)

    assert outcomes[0] == 1
    assert all(isinstance(o, ConnectionError) for o in outcomes[1:])
    assert await batcher.submit("ws", 4) == 4, "the next batch runs as usual"
    assert calls == [[1], [2, 3], [4]]


async def test_a_wrong_number_of_outcomes_fails_the_batch() -> None:
    async def process(key: str, items: Sequence[int]) -> list[int | BaseException]:
        return [1]

    batcher: Batcher[int, int] = Batcher(process)
    results = await asyncio.gather(
        batcher.submit("ws", 1), batcher.submit("ws", 2), return_exceptions=True
    )
    assert all(isinstance(r, RuntimeError) for r in results)


async def test_an_item_whose_submitter_stopped_waiting_is_left_out() -> None:
    recorder = Recorder()
    recorder.gates["ws"] = asyncio.Event()
    batcher: Batcher[int, int] = Batcher(recorder)

    first = asyncio.create_task(batcher.submit("ws", 0))
    await settle()
    gone = asyncio.create_task(batcher.submit("ws", 2))
    kept = asyncio.create_task(batcher.submit("ws", 4))
    await settle()
    gone.cancel()
    recorder.gates["ws"].set()

    assert list(await asyncio.gather(first, kept)) == [0, 40]
    assert recorder.batches == [("ws", [0]), ("ws", [4])]


def test_a_batch_holds_at_least_one_item() -> None:
    async def process(key: str, items: Sequence[int]) -> list[int | BaseException]:
        return list(items)

    with pytest.raises(ValueError, match="at least one"):
        Batcher(process, max_size=0)


class TwoStages:
    """A two-stage processor: the first stage records, the second waits for `release`."""

    def __init__(self) -> None:
        self.first_stages: list[list[int]] = []
        self.release: dict[int, asyncio.Event] = {}
        self.in_first = 0
        self.overlapped_first = False

    async def __call__(
        self, key: str, items: Sequence[int]
    ) -> asyncio.Task[list[int | BaseException]]:
        self.in_first += 1
        self.overlapped_first |= self.in_first > 1
        await asyncio.sleep(0)
        self.first_stages.append(list(items))
        self.in_first -= 1
        gate = self.release.setdefault(items[0], asyncio.Event())

        async def second() -> list[int | BaseException]:
            await gate.wait()
            if items[0] < 0:
                raise ConnectionError("broker unreachable")
            return [item * 10 for item in items]

        return asyncio.create_task(second())


async def test_the_next_batch_starts_while_the_second_stage_of_the_last_runs() -> None:
    stages = TwoStages()
    batcher: Batcher[int, int] = Batcher.in_two_stages(stages)

    first = asyncio.create_task(batcher.submit("ws", 1))
    await settle()
    second = asyncio.create_task(batcher.submit("ws", 2))
    await settle()

    assert stages.first_stages == [[1], [2]], "the second batch started before the first ended"
    assert not first.done(), "outcomes wait for the second stage"
    assert not second.done()
    stages.release[2].set()
    assert await second == 20
    assert not first.done()
    stages.release[1].set()
    assert await first == 10
    assert not stages.overlapped_first


async def test_a_failing_second_stage_fails_its_own_batch_only() -> None:
    stages = TwoStages()
    batcher: Batcher[int, int] = Batcher.in_two_stages(stages)

    failing = asyncio.create_task(batcher.submit("ws", -1))
    await settle()
    fine = asyncio.create_task(batcher.submit("ws", 3))
    await settle()
    for gate in stages.release.values():
        gate.set()

    with pytest.raises(ConnectionError, match="broker unreachable"):
        await failing
    assert await fine == 30
