"""The lease loop claims at once when woken, and wakes coalesce: never a claim per wake."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from mailsync_ingest.lease_loop import Cadence, LeaseLoop

LONG = 60.0


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Wait for `condition`, failing after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


class Steps:
    """In-memory steps that count their runs; a claim can be held open with `hold`."""

    def __init__(self) -> None:
        self.claims = 0
        self.renewals = 0
        self.reaps = 0
        self.hold = asyncio.Event()
        self.hold.set()
        self.claiming = asyncio.Event()

    async def reap(self) -> None:
        self.reaps += 1

    async def renew(self) -> None:
        self.renewals += 1

    async def claim(self) -> None:
        self.claims += 1
        self.claiming.set()
        await self.hold.wait()
        self.claiming.clear()


@contextlib.asynccontextmanager
async def running(
    steps: Steps, *, claim_every: float = LONG, renew_every: float = LONG, gap: float = 0.01
) -> AsyncIterator[LeaseLoop]:
    loop = LeaseLoop(
        reap=steps.reap,
        renew=steps.renew,
        claim=steps.claim,
        renew_every=renew_every,
        claim_every=claim_every,
        wake_gap=gap,
    )
    task = asyncio.create_task(loop.run())
    try:
        yield loop
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_wake_claims_at_once_instead_of_at_the_next_period() -> None:
    steps = Steps()
    async with running(steps) as loop:
        await until(lambda: steps.claims == 1)
        await asyncio.sleep(0.2)
        assert steps.claims == 1, "without a wake the next claim waits for its period"
        loop.wake_claim()
        await until(lambda: steps.claims == 2)
        assert steps.renewals == 1, "a claim wake does not renew"


async def test_wakes_during_a_claim_make_one_more_claim_not_one_each() -> None:
    steps = Steps()
    async with running(steps) as loop:
        await until(lambda: steps.claims == 1)
        steps.hold.clear()
        loop.wake_claim()
        await asyncio.wait_for(steps.claiming.wait(), 5)
        for _ in range(500):
            loop.wake_claim()
        steps.hold.set()
        await until(lambda: steps.claims == 3)
        await asyncio.sleep(0.3)
        assert steps.claims == 3, "500 wakes during one claim made more than one more claim"


async def test_woken_claims_keep_the_gap_between_them() -> None:
    steps = Steps()
    async with running(steps, gap=0.25) as loop:
        await until(lambda: steps.claims == 1)
        started = asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - started < 1.0:
            loop.wake_claim()
            await asyncio.sleep(0.005)
        elapsed = asyncio.get_running_loop().time() - started
    woken = steps.claims - 1
    assert woken >= 2, "steady wakes claimed again and again"
    assert woken <= elapsed / 0.25 + 1, f"{woken} claims in {elapsed:.2f} s with a 0.25 s gap"


async def test_the_periodic_claim_runs_without_wakes() -> None:
    steps = Steps()
    async with running(steps, claim_every=0.05):
        await until(lambda: steps.claims >= 4)


async def test_a_renewal_wake_renews_at_once() -> None:
    steps = Steps()
    async with running(steps) as loop:
        await until(lambda: steps.renewals == 1 and steps.claims == 1)
        loop.wake_renewal()
        await until(lambda: steps.renewals == 2)
        assert steps.claims == 1, "a renewal wake does not claim"


async def test_a_failing_claim_does_not_stop_the_loop_or_spin_it() -> None:
    steps = Steps()
    failures = 0

    async def failing() -> None:
        nonlocal failures
        failures += 1
        raise RuntimeError("store unavailable")

    loop = LeaseLoop(
        reap=steps.reap,
        renew=steps.renew,
        claim=failing,
        renew_every=LONG,
        claim_every=LONG,
        wake_gap=0.01,
    )
    task = asyncio.create_task(loop.run())
    try:
        await until(lambda: failures == 1)
        loop.wake_claim()
        await until(lambda: failures == 2)
        reaps = steps.reaps
        await asyncio.sleep(0.3)
        assert steps.reaps - reaps <= 0.3 / 0.05 + 1, "the loop spins after a failed claim"
        assert failures == 2
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_a_cadence_is_due_at_its_period_and_after_a_wake_once_the_gap_passed() -> None:
    cadence = Cadence(every=10.0, gap=0.5)
    assert cadence.due(0.0), "due at once before the first run"
    cadence.started(100.0)
    assert cadence.due_at() == 110.0
    cadence.wake()
    assert cadence.due_at() == 100.5
    assert not cadence.due(100.2)
    assert cadence.due(100.5)
    cadence.started(100.5)
    assert cadence.due_at() == 110.5, "the run answered the wake"
    cadence.wake()
    cadence.wake()
    cadence.started(111.0)
    assert cadence.due_at() == 121.0
