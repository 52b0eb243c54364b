"""Recording public events as webhook deliveries, one per subscription that wants the event.

Recording is a database write, never an HTTP request: the queue of public events moves on as
fast as the store allows, whatever the receivers do.
"""

import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.messaging import PermanentError
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.webhooks.documents import (
    DELIVERIES,
    SUBSCRIPTIONS,
    WebhookDeliveryDocument,
    WebhookSubscriptionDocument,
)

KEPT_AT_MOST = 10_000


@dataclass(frozen=True)
class EventHead:
    id: str
    type: str
    workspace_id: str


def event_head(body: bytes) -> EventHead:
    """The envelope fields recording needs; a body that is not one event is refused."""
    try:
        event = json.loads(body)
        head = EventHead(str(event["id"]), str(event["type"]), str(event["workspaceid"]))
    except (ValueError, KeyError, TypeError) as error:
        raise PermanentError(f"not a public event: {error}") from None
    if not (head.id and head.type and head.workspace_id):
        raise PermanentError("a public event needs an id, a type and a workspaceid")
    return head


class Sequence:
    """Strictly increasing numbers from the clock (nanoseconds), across restarts too."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(self._last + 1, time.time_ns())
        return self._last


class WebhookRecorder:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        *,
        cache_seconds: float,
        recorded: Callable[[str, str], None],
    ) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._recorded = recorded
        self._sequence = Sequence()
        self._kept: dict[str, tuple[float, list[WebhookSubscriptionDocument]]] = {}

    async def record(self, body: bytes) -> int:
        """One delivery per enabled subscription of the event's workspace that wants its type;
        how many. A redelivered event records nothing new (deliveries are keyed by event)."""
        head = event_head(body)
        store = WorkspaceStore(self._db, head.workspace_id)
        wanted = [item for item in await self._subscriptions(store) if item.wants(head.type)]
        if not wanted:
            return 0
        seq = self._sequence.next()
        text = body.decode()
        deliveries = [
            WebhookDeliveryDocument(
                _id=WebhookDeliveryDocument.id_for(subscription.id, head.id),
                workspace_id=head.workspace_id,
                subscription_id=subscription.id,
                event_id=head.id,
                event_type=head.type,
                seq=seq,
                body=text,
            ).to_document()
            for subscription in wanted
        ]
        await store.collection(DELIVERIES).insert_new(deliveries)
        for subscription in wanted:
            self._recorded(subscription.id, head.workspace_id)
        return len(wanted)

    async def _subscriptions(self, store: WorkspaceStore) -> list[WebhookSubscriptionDocument]:
        now = time.monotonic()
        kept = self._kept.get(store.workspace_id)
        if kept is not None and kept[0] > now:
            return kept[1]
        documents = await store.collection(SUBSCRIPTIONS).find({"enabled": True})
        subscriptions = [WebhookSubscriptionDocument.from_document(d) for d in documents]
        if self._cache_seconds > 0:
            if len(self._kept) >= KEPT_AT_MOST:
                self._kept = dict(itertools.islice(self._kept.items(), KEPT_AT_MOST // 2))
            self._kept[store.workspace_id] = (now + self._cache_seconds, subscriptions)
        return subscriptions
