"""A periodic step keeps running after a failure and stops when asked."""

import asyncio

import pytest

from mailsync_shared.periodic import Periodic


async def test_a_failing_step_is_logged_and_the_next_one_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[int] = []
    third = asyncio.Event()

    async def step() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise ConnectionError("store away")
        if len(calls) == 3:
            third.set()

    periodic = Periodic(step, 0.01, failure="pass failed", extra={"collection": "threads"})
    await periodic.start()
    await asyncio.wait_for(third.wait(), timeout=5)
    await periodic.stop()
    stopped_at = len(calls)
    await asyncio.sleep(0.05)

    assert len(calls) == stopped_at, "no step runs after stop"
    failures = [r for r in caplog.records if r.message == "pass failed"]
    assert len(failures) == 1
    assert failures[0].collection == "threads"  # type: ignore[attr-defined]
