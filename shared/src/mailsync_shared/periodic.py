"""A step a service runs every few seconds in the background, from start to stop."""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

logger = logging.getLogger(__name__)


class Periodic:
    """Runs `step` every `every` seconds between `start` and `stop`.

    A step that raises is logged as `failure` (with `extra`) and the next one runs as usual:
    a store or broker that is away for a while must not end the loop.
    """

    def __init__(
        self,
        step: Callable[[], Awaitable[object]],
        every: float,
        *,
        failure: str,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self._step = step
        self._every = every
        self._failure = failure
        self._extra = dict(extra or {})
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            try:
                await self._step()
            except Exception:
                logger.exception(self._failure, extra=self._extra)
            await asyncio.sleep(self._every)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
