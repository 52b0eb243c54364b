"""Internal work messages that carry a batch: one broker message for many events.

Ingest and capture publish a batch of one workspace's events as JSON arrays
(`EventPublisher.publish_together`), so the broker, FastStream and the consumer pay their
per-delivery cost once per batch rather than once per email. A consumer of these queues takes
a delivery holding one event or a list of them.

`submit_delivery` hands a delivery's events, in order, to the consumer's `Batcher`, in the
delivery's turn (`mailsync_shared.delivery_order`): after the deliveries received before it on
its queue. Its outcome keeps what per-event deliveries gave:

- every event succeeded: the delivery is acknowledged;
- every event failed: the first error is raised, so the delivery is requeued and, after the
  queue's delivery limit, dead-lettered with its reason;
- some failed: those events are published again one per message and the delivery is
  acknowledged, so a bad event is retried and dead-lettered on its own while the others,
  already done, are not repeated.
"""

from collections.abc import Awaitable, Callable, Sequence
from functools import cache
from typing import Any, TypeVar

from pydantic import TypeAdapter

from mailsync_shared.batching import Batcher
from mailsync_shared.contracts.envelope import Event
from mailsync_shared.delivery_order import in_turn

EventT = TypeVar("EventT", bound=Event)
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


def events_of(delivered: EventT | Sequence[EventT]) -> list[EventT]:
    return list(delivered) if isinstance(delivered, Sequence) else [delivered]


def events_in(body: bytes, event_type: type[EventT]) -> list[EventT]:
    """The events of a work message's body, whether it holds one event or a list.

    Validated from the JSON text in one pass; a body that is not JSON, or not such events,
    raises pydantic's `ValidationError` (dead-lettered with its reason by the consumer)."""
    if body.lstrip()[:1] == b"[":
        events: list[EventT] = _list_of(event_type).validate_json(body)
        return events
    return [event_type.model_validate_json(body)]


@cache
def _list_of(event_type: type[Event]) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[event_type])  # type: ignore[valid-type]


async def submit_delivery(
    batcher: Batcher[ItemT, ResultT],
    events: Sequence[EventT],
    item: Callable[[EventT], ItemT],
    retry_alone: Callable[[EventT], Awaitable[None]],
) -> None:
    """Process one delivery's events through `batcher` (see the module docstring)."""
    by_workspace: dict[str, list[EventT]] = {}
    for event in events:
        by_workspace.setdefault(event.workspaceid, []).append(event)
    async with in_turn():
        submitted = [
            (group, batcher.put_all(workspace_id, [item(event) for event in group]))
            for workspace_id, group in by_workspace.items()
        ]
    failed: list[tuple[EventT, BaseException]] = []
    for group, pending in submitted:
        outcomes = await pending
        failed += [
            (event, outcome)
            for event, outcome in zip(group, outcomes, strict=True)
            if isinstance(outcome, BaseException)
        ]
    if not failed:
        return
    if len(failed) == len(events):
        raise failed[0][1]
    for event, _ in failed:
        await retry_alone(event)
