"""Shared reads: callers asking at the same moment share a read that began after they asked."""

import asyncio

import pytest

from mailsync_shared.shared_reads import SharedReads


class Store:
    """A value that changes, and a read of it that waits until the test lets it answer."""

    def __init__(self) -> None:
        self.value = "v1"
        self.reads = 0
        self.gate = asyncio.Event()

    async def read(self) -> str:
        self.reads += 1
        seen = self.value  # what the read sees is fixed when it begins
        await self.gate.wait()
        return seen


async def settle() -> None:
    """Let every task that can run, run."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_callers_that_ask_while_a_read_runs_share_the_next_one() -> None:
    store = Store()
    reads: SharedReads[str] = SharedReads()
    first = asyncio.create_task(reads.read("key", store.read))
    await settle()
    assert store.reads == 1
    # Changed after the first read began: the callers asking now must see the change.
    store.value = "v2"
    later = [asyncio.create_task(reads.read("key", store.read)) for _ in range(5)]
    await settle()
    assert store.reads == 1
    store.gate.set()
    assert await first == "v1"
    assert await asyncio.gather(*later) == ["v2"] * 5
    assert store.reads == 2


async def test_keys_are_read_apart_and_a_failed_read_fails_each_caller() -> None:
    reads: SharedReads[str] = SharedReads()
    calls: list[str] = []

    async def ok() -> str:
        calls.append("ok")
        return "fine"

    async def broken() -> str:
        calls.append("broken")
        raise RuntimeError("store down")

    results = await asyncio.gather(
        reads.read("a", ok),
        reads.read("b", broken),
        reads.read("b", broken),
        return_exceptions=True,
    )
    assert results[0] == "fine"
    assert all(isinstance(item, RuntimeError) for item in results[1:])
    assert sorted(calls) == ["broken", "ok"]
    with pytest.raises(RuntimeError):
        await reads.read("b", broken)
    assert calls.count("broken") == 2
