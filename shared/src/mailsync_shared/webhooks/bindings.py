"""Which public events reach the webhook queue: only those an enabled subscription wants.

`mailsync.send.webhook-events` is bound to `mailsync.events` by one routing key per workspace
and event type that an enabled subscription of that workspace wants (`<type>.<workspace id>`),
so the broker drops every other public event before any process reads it: a deployment
without webhooks spends nothing on them, and one with a few reads only their events.

Every key bound is recorded first (`webhook_bindings`, `_id` = the key), so whichever process
later finds a key that no enabled subscription wants can unbind it, after a restart too.

- The api binds a subscription's keys when it saves the subscription, before it answers, so
  the events published after that reach the queue.
- The send service reconciles every `webhook_poll_seconds`: it unbinds recorded keys that no
  enabled subscription wants (a subscription deleted, disabled or narrowed), and binds wanted
  keys that are not recorded. The record is read before the subscriptions, so a key recorded
  for a subscription being saved is seen wanted. Every `FULL_PASS_SECONDS`, and on its first
  pass, it binds every wanted key again (binding is idempotent), which repairs a binding lost
  with a redeclared queue or an api that failed between recording and binding; the first pass
  also removes the catch-all `#` binding of earlier versions, after the keys are bound.
"""

import contextlib
import logging
import time
from collections.abc import Iterable

from faststream.rabbit import RabbitBroker
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import SystemCollections
from mailsync_shared.topology import EVENTS_EXCHANGE, webhook_events_queue

logger = logging.getLogger(__name__)

FULL_PASS_SECONDS = 300.0
# What earlier versions bound the queue with: every public event.
CATCH_ALL = "#"


def binding_keys(workspace_id: str, event_types: Iterable[str]) -> set[str]:
    """The routing keys of the workspace's public events of these types."""
    return {f"{event_type}.{workspace_id}" for event_type in event_types}


class WebhookBindings:
    """The webhook queue's bindings to the public exchange, recorded in the store."""

    def __init__(self, broker: RabbitBroker, db: AsyncDatabase[Document]) -> None:
        self._broker = broker
        self._system = SystemCollections(db)
        self._full_pass_at: float | None = None

    async def bind(self, workspace_id: str, event_types: Iterable[str]) -> None:
        """Route the workspace's public events of these types to the webhook queue."""
        await self._bind({key: workspace_id for key in binding_keys(workspace_id, event_types)})

    async def reconcile(self) -> list[Document]:
        """Bind what enabled subscriptions want and unbind what none wants any more; the
        enabled subscriptions (`SystemCollections.enabled_webhook_subscriptions`). Bindings
        that could not be changed (the broker away) are left to the next pass."""
        recorded = await self._system.webhook_binding_keys()
        subscriptions = await self._system.enabled_webhook_subscriptions()
        wanted: dict[str, str] = {}
        for item in subscriptions:
            workspace_id = str(item["workspace_id"])
            for key in binding_keys(workspace_id, item.get("event_types") or []):
                wanted[key] = workspace_id
        try:
            await self._apply(recorded, wanted)
        except Exception:
            logger.exception("webhook bindings not changed; trying again at the next pass")
        return subscriptions

    async def _apply(self, recorded: set[str], wanted: dict[str, str]) -> None:
        now = time.monotonic()
        full = self._full_pass_at is None or now - self._full_pass_at >= FULL_PASS_SECONDS
        missing = wanted if full else {k: v for k, v in wanted.items() if k not in recorded}
        await self._bind(missing)
        stale = recorded - wanted.keys()
        if stale or (full and self._full_pass_at is None):
            queue = await webhook_events_queue(self._broker)
            for key in sorted(stale):
                await queue.unbind(EVENTS_EXCHANGE.name, routing_key=key)
                await self._system.webhook_bindings.delete_one({"_id": key})
            if self._full_pass_at is None:
                await queue.unbind(EVENTS_EXCHANGE.name, routing_key=CATCH_ALL)
        if stale or missing.keys() - recorded:
            logger.info(
                "webhook bindings changed",
                extra={"bound": len(missing.keys() - recorded), "unbound": len(stale)},
            )
        if full:
            self._full_pass_at = now

    async def _bind(self, keys: dict[str, str]) -> None:
        if not keys:
            return
        queue = await webhook_events_queue(self._broker)
        for key, workspace_id in sorted(keys.items()):
            with contextlib.suppress(DuplicateKeyError):  # recorded already
                await self._system.webhook_bindings.insert_one(
                    {"_id": key, "workspace_id": workspace_id}
                )
            # The broker keeps it (durable queue and exchange); the client must not restore,
            # on a reconnect, one that was unbound meanwhile.
            await queue.bind(EVENTS_EXCHANGE.name, routing_key=key, robust=False)
