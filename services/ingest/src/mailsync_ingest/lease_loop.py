"""The worker's lease loop: reap finished syncs, renew leases, claim mailboxes.

Renewal and claims each run on a period (`Cadence`) and can be brought forward by a wake:
the api announces a claimable mailbox (`MailboxClaimable`), or the worker let go of a
mailbox that may be claimed again. The three steps run one after another in one task, so they
never race over the worker's set of running syncs.

Wakes coalesce: every wake that arrives before a step starts (while the step before it runs,
or a claim runs) leads to one run of that step, and a step brought forward by wakes runs at
most once per `gap` seconds, so a burst of connects costs a scan or two, not one per mailbox.
"""

import asyncio
import contextlib
import logging
import math
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

# Shortest sleep between rounds when one failed before its steps were rescheduled.
MIN_SLEEP_SECONDS = 0.05

Step = Callable[[], Awaitable[None]]


class Cadence:
    """When a periodic step runs next: every `every` seconds, and early after `wake()`, but
    then never sooner than `gap` seconds after it last started."""

    def __init__(self, every: float, gap: float) -> None:
        self._every = every
        self._gap = gap
        self._next = -math.inf  # due at once
        self._last = -math.inf
        self._woken = False

    def wake(self) -> None:
        self._woken = True

    def due_at(self) -> float:
        if self._woken:
            return min(self._next, self._last + self._gap)
        return self._next

    def due(self, now: float) -> bool:
        return now >= self.due_at()

    def started(self, now: float) -> None:
        """The step starts now: wakes so far are answered by this run."""
        self._woken = False
        self._last = now
        self._next = now + self._every


class LeaseLoop:
    def __init__(
        self,
        *,
        reap: Step,
        renew: Step,
        claim: Step,
        renew_every: float,
        claim_every: float,
        wake_gap: float,
    ) -> None:
        self._reap = reap
        self._renew = renew
        self._claim = claim
        self._renewal = Cadence(renew_every, wake_gap)
        self._claims = Cadence(claim_every, wake_gap)
        self._woken = asyncio.Event()

    def wake_claim(self) -> None:
        """Claim as soon as the current step (if any) is done."""
        self._claims.wake()
        self._woken.set()

    def wake_renewal(self) -> None:
        """Renew (and so re-read the leased mailboxes the api changed) as soon as possible."""
        self._renewal.wake()
        self._woken.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._woken.clear()
            try:
                await self._reap()
                if self._renewal.due(loop.time()):
                    self._renewal.started(loop.time())
                    await self._renew()
                if self._claims.due(loop.time()):
                    self._claims.started(loop.time())
                    await self._claim()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("lease loop round failed")
            until = min(self._renewal.due_at(), self._claims.due_at())
            timeout = max(MIN_SLEEP_SECONDS, until - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), timeout)
