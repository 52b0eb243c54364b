"""Handing a subscriber's deliveries on in the order they arrived.

A subscriber handles up to the channel's prefetch of deliveries at once, each in a task of
its own, and FastStream's path from receiving a delivery to calling its handler may let a
later delivery overtake an earlier one wherever it awaits: a handler taking the `RabbitMessage`
context field, for one, has it resolved by FastDepends in a worker thread (`run_in_threadpool`),
and the threads finish in no set order (the services' handlers take the delivery as their
argument instead, `mailsync_shared.deliveries`, but any middleware that awaits before the
handler could do the same). Batching (`mailsync_shared.batching`) keeps the order items are
submitted in, so a handler that owes its queue's order submits in its delivery's turn:

- `DeliveryOrder.middleware` gives each delivery a turn when it is received, which is still
  in delivery order: aio-pika starts one task per delivery in the order they came, and the
  broker's middlewares are entered before FastStream awaits anything that could swap them;
- the handler submits inside `async with in_turn():`, which waits until every delivery
  received before it on the same subscriber has passed its turn, and passes it on at the end
  of the block;
- a delivery that fails, or whose handler never takes its turn, passes it on when its
  handling ends.

Only the hand-over is in sequence: a delivery waits for its batch's outcome after its turn,
so the deliveries behind it join the next batch meanwhile and batches still run as before.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any

from faststream import BaseMiddleware
from faststream.message import StreamMessage


class _Turn:
    """One delivery's place: it may submit once the turn before it has been passed."""

    __slots__ = ("_before", "_handed", "passed")

    def __init__(self, before: asyncio.Future[None] | None) -> None:
        self._before = before
        self._handed = False
        self.passed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def wait(self) -> None:
        before = self._before
        if before is not None and not before.done():
            # Waiting on the future, not awaiting it: a cancelled delivery must not cancel it.
            await asyncio.wait([before])

    def pass_on(self) -> None:
        """Passed at once, or, when the turn before is not yet, as soon as it is."""
        if self._handed:
            return
        self._handed = True
        before = self._before
        if before is None or before.done():
            self._settle()
        else:
            before.add_done_callback(self._settle)

    def _settle(self, _: object = None) -> None:
        self._before = None
        if not self.passed.done():
            self.passed.set_result(None)


_current: ContextVar[_Turn | None] = ContextVar("delivery_turn", default=None)


@asynccontextmanager
async def in_turn() -> AsyncIterator[None]:
    """Wait until the deliveries received before this one have submitted; pass the turn on
    at the end of the block, which therefore must not wait for anything but the turn.

    Outside a delivery that took a turn (`DeliveryOrder`), the block runs at once."""
    turn = _current.get()
    if turn is None:
        yield
        return
    await turn.wait()
    try:
        yield
    finally:
        turn.pass_on()


class DeliveryOrder:
    """The turns of each subscriber's deliveries, in the order they were received."""

    def __init__(self) -> None:
        self._last: dict[object, asyncio.Future[None]] = {}

    def take(self, subscriber: object) -> _Turn:
        turn = _Turn(self._last.get(subscriber))
        self._last[subscriber] = turn.passed
        return turn

    def middleware(self) -> type[BaseMiddleware]:
        """A broker (or router) middleware giving each delivery its turn as it is received."""
        order = self

        class TakeTurns(BaseMiddleware):
            _turn: _Turn
            _token: Token[_Turn | None]

            async def on_receive(self) -> None:
                self._turn = order.take(self.context.get("handler_"))
                self._token = _current.set(self._turn)

            async def consume_scope(self, call_next: Any, msg: StreamMessage[Any]) -> Any:
                try:
                    return await call_next(msg)
                finally:  # before the outer middlewares' work (dead-lettering, say)
                    self._turn.pass_on()

            async def after_processed(
                self,
                exc_type: type[BaseException] | None = None,
                exc_val: BaseException | None = None,
                exc_tb: TracebackType | None = None,
            ) -> bool | None:
                self._turn.pass_on()  # also when the delivery failed before its handler
                _current.reset(self._token)
                return False

        return TakeTurns
