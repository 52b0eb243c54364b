"""A delivery holding several events: decoded as a list, failures retried one by one."""

import json
from collections.abc import Sequence
from typing import Literal

import pytest
from pydantic import ValidationError

from mailsync_shared.batching import Batcher
from mailsync_shared.contracts.envelope import Event
from mailsync_shared.work_batches import events_in, events_of, submit_delivery


class Numbered(Event):
    type: Literal["test.numbered.v1"] = "test.numbered.v1"
    data: int


def numbered(*numbers: int, workspace_id: str = "ws") -> list[Numbered]:
    return [Numbered.create(source="/t", workspace_id=workspace_id, data=n) for n in numbers]


async def odd_fails(key: str, items: Sequence[int]) -> list[int | BaseException]:
    return [ValueError(f"{item} is odd") if item % 2 else item for item in items]


class Retries:
    def __init__(self) -> None:
        self.events: list[Numbered] = []

    async def __call__(self, event: Numbered) -> None:
        self.events.append(event)


def test_a_body_holds_one_event_or_a_list() -> None:
    one, two = numbered(1, 2)
    single = one.model_dump_json().encode()
    both = json.dumps([one.model_dump(mode="json"), two.model_dump(mode="json")]).encode()

    assert events_in(single, Numbered) == [one]
    assert events_in(both, Numbered) == [one, two]
    assert events_of(one) == [one]
    assert events_of([one, two]) == [one, two]


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"5", b'[{"type": "other.v1"}]'])
def test_a_body_that_is_not_such_events_is_refused_as_invalid(body: bytes) -> None:
    with pytest.raises(ValidationError):
        events_in(body, Numbered)


async def test_a_delivery_whose_events_all_succeed_retries_nothing() -> None:
    retries = Retries()
    await submit_delivery(Batcher(odd_fails), numbered(2, 4, 6), lambda e: e.data, retries)
    assert retries.events == []


async def test_the_failed_events_of_a_delivery_are_published_again_alone() -> None:
    retries = Retries()
    events = numbered(2, 3, 4, 5)
    await submit_delivery(Batcher(odd_fails), events, lambda e: e.data, retries)
    assert retries.events == [events[1], events[3]]


async def test_a_delivery_whose_events_all_fail_raises_for_redelivery() -> None:
    retries = Retries()
    with pytest.raises(ValueError, match="1 is odd"):
        await submit_delivery(Batcher(odd_fails), numbered(1, 3), lambda e: e.data, retries)
    assert retries.events == []


async def test_events_reach_the_batch_in_delivery_order() -> None:
    seen: list[tuple[str, list[int]]] = []

    async def record(key: str, items: Sequence[int]) -> list[int | BaseException]:
        seen.append((key, list(items)))
        return list(items)

    events = [*numbered(8, 6, workspace_id="a"), *numbered(4, workspace_id="b")]
    await submit_delivery(Batcher(record), events, lambda e: e.data, Retries())
    assert seen == [("a", [8, 6]), ("b", [4])]
