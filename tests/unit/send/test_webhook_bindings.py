"""The webhook queue's bindings follow the enabled subscriptions (in-memory store and queue)."""

from typing import Any, cast

import pytest
from faststream.rabbit import RabbitBroker

from mailsync_shared.webhooks import bindings as module
from mailsync_shared.webhooks.bindings import CATCH_ALL, WebhookBindings
from tests.support.memory_store import MemoryDatabase

LOGGED = "mailsync.email.logged.v1"
SENT = "mailsync.email.sent.v1"


class FakeQueue:
    """The webhook queue's bindings to the public exchange, as the broker holds them."""

    def __init__(self) -> None:
        self.keys: set[str] = {CATCH_ALL}
        self.unbinds = 0
        self.broken = False

    async def bind(self, exchange: str, *, routing_key: str, robust: bool) -> None:
        assert exchange == "mailsync.events"
        assert not robust
        self.keys.add(routing_key)

    async def unbind(self, exchange: str, *, routing_key: str) -> None:
        if self.broken:
            raise ConnectionError("broker away")
        self.unbinds += 1
        self.keys.discard(routing_key)


@pytest.fixture
def queue(monkeypatch: pytest.MonkeyPatch) -> FakeQueue:
    fake = FakeQueue()

    async def webhook_events_queue(_broker: RabbitBroker) -> Any:
        return fake

    monkeypatch.setattr(module, "webhook_events_queue", webhook_events_queue)
    return fake


async def subscribe(db: MemoryDatabase, id_: str, workspace_id: str, types: list[str]) -> None:
    await db["webhook_subscriptions"].insert_one(
        {"_id": id_, "workspace_id": workspace_id, "event_types": types, "enabled": True}
    )


async def test_keys_follow_the_subscriptions_and_the_catch_all_goes(queue: FakeQueue) -> None:
    db = MemoryDatabase()
    bindings = WebhookBindings(cast(RabbitBroker, None), db.as_database())

    await bindings.reconcile()
    assert queue.keys == set()  # no subscription: nothing reaches the queue

    await subscribe(db, "s1", "w1", [LOGGED])
    await bindings.bind("w1", [LOGGED])  # as the api does when it saves the subscription
    await subscribe(db, "s2", "w2", [LOGGED, SENT])  # saved by a version that did not bind
    await bindings.reconcile()
    assert queue.keys == {f"{LOGGED}.w1", f"{LOGGED}.w2", f"{SENT}.w2"}

    await db["webhook_subscriptions"].update_one({"_id": "s2"}, {"$set": {"event_types": [SENT]}})
    await db["webhook_subscriptions"].update_one({"_id": "s1"}, {"$set": {"enabled": False}})
    await bindings.reconcile()
    assert queue.keys == {f"{SENT}.w2"}
    recorded = await db["webhook_bindings"].find({}).to_list()
    assert {item["_id"] for item in recorded} == {f"{SENT}.w2"}


async def test_a_broker_away_leaves_the_change_to_the_next_pass(queue: FakeQueue) -> None:
    db = MemoryDatabase()
    bindings = WebhookBindings(cast(RabbitBroker, None), db.as_database())
    await subscribe(db, "s1", "w1", [LOGGED])
    await bindings.reconcile()
    await db["webhook_subscriptions"].delete_many({"_id": "s1"})

    queue.broken = True
    assert await bindings.reconcile() == []  # the subscriptions, all the same
    assert f"{LOGGED}.w1" in queue.keys

    queue.broken = False
    await bindings.reconcile()
    assert queue.keys == set()
    assert await db["webhook_bindings"].find({}).to_list() == []
