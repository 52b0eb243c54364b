"""The worker's budget of bytes in flight, and batches planned by size."""

import asyncio

import pytest

from mailsync_ingest.byte_budget import ByteBudget
from mailsync_ingest.window import batches_within


async def test_a_request_waits_until_the_bytes_fit_and_waiters_go_in_order() -> None:
    budget = ByteBudget(100)
    first = await budget.acquire(70)
    order: list[str] = []

    async def ask(name: str, size: int) -> int:
        grant = await budget.acquire(size)
        order.append(name)
        return grant

    big = asyncio.create_task(ask("big", 60))
    await asyncio.sleep(0)
    small = asyncio.create_task(ask("small", 10))  # would fit now, but asked later
    await asyncio.sleep(0)
    assert order == []
    assert budget.in_flight == 70

    budget.release(first)
    assert await big == 60
    assert await small == 10
    assert order == ["big", "small"]
    assert budget.peak <= 100
    assert budget.waits == 2


async def test_a_message_larger_than_the_budget_goes_alone() -> None:
    budget = ByteBudget(100)
    held = await budget.acquire(30)
    huge = asyncio.create_task(budget.acquire(500))
    await asyncio.sleep(0)
    assert not huge.done()
    budget.release(held)
    assert await huge == 100
    assert budget.in_flight == 100
    budget.release(100)
    assert budget.in_flight == 0


async def test_a_cancelled_request_holds_nothing_and_lets_the_next_in() -> None:
    budget = ByteBudget(100)
    held = await budget.acquire(90)
    cancelled = asyncio.create_task(budget.acquire(50))
    later = asyncio.create_task(budget.acquire(40))
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    budget.release(held)
    assert await later == 40
    assert budget.in_flight == 40


def test_batches_keep_to_the_count_and_the_bytes() -> None:
    sizes = {1: 40, 2: 40, 3: 40, 4: 500, 5: 10, 6: 10, 7: 10}
    planned = batches_within([1, 2, 3, 4, 5, 6, 7], sizes, count=2, max_bytes=100)
    assert planned == [[1, 2], [3], [4], [5, 6], [7]]


def test_batches_of_unknown_sizes_are_cut_by_count_only() -> None:
    assert batches_within([9, 8, 7], {}, count=2, max_bytes=1) == [[9, 8], [7]]
