"""Events that must go out once a write is made, kept in the written document itself.

The store has no multi-document transactions, so an event due after a change is written
into the changed document, in the same single-document update (`outbox` field). It is
then published and removed. A process killed in between leaves it in the document, where
`relay_pending` (run periodically by the service owning the collection) finds and
publishes it. An event can therefore go out twice, always with the same id, never zero
times.

Used for changes made outside a broker delivery (the api applying capture rules, a person
linking a thread); work driven by a queue relies on redelivery instead.
"""

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.envelope import Event
from mailsync_shared.contracts.records import ContactCaptured, EmailLogged, ThreadAssociated
from mailsync_shared.periodic import Periodic
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceCollection, WorkspaceStore

OUTBOX_FIELD = "outbox"
RELAY_GRACE = timedelta(seconds=30)

Publish = Callable[[Event], Awaitable[None]]

logger = logging.getLogger(__name__)

_EVENT_TYPES: dict[str, type[Event]] = {
    event_type.event_type: event_type
    for event_type in (ContactCaptured, ThreadAssociated, EmailLogged)
}


def entry(event: Event, at: datetime | None = None) -> dict[str, Any]:
    """The stored form of a due event, to put into a document's `outbox`."""
    return {
        "id": event.id,
        "type": event.type,
        "body": event.model_dump_json(by_alias=True),
        "at": at or utcnow(),
    }


def push(events: Iterable[Event]) -> dict[str, Any]:
    """The `$push` clause adding due events to a document's outbox."""
    return {OUTBOX_FIELD: {"$each": [entry(event) for event in events]}}


def _event(stored: Mapping[str, Any]) -> Event:
    return _EVENT_TYPES[str(stored["type"])].model_validate_json(str(stored["body"]))


async def deliver(collection: WorkspaceCollection, document_id: str, publish: Publish) -> int:
    """Publish the document's due events, removing each once the broker confirmed it."""
    document = await collection.find_one({"_id": document_id}, projection={OUTBOX_FIELD: 1})
    pending: list[dict[str, Any]] = list((document or {}).get(OUTBOX_FIELD) or [])
    for stored in pending:
        await publish(_event(stored))
        await collection.update_one({"_id": document_id}, {"$pull": {OUTBOX_FIELD: stored}})
    return len(pending)


async def relay_pending(
    system: SystemCollections,
    store_of: Callable[[str], WorkspaceStore],
    collection: str,
    publish: Publish,
    *,
    grace: timedelta = RELAY_GRACE,
) -> int:
    """Publish events left behind in `collection` longer than `grace` ago; count them."""
    published = 0
    for holder in await system.holders_of_pending_events(collection, utcnow() - grace):
        scoped = store_of(str(holder["workspace_id"])).collection(collection)
        published += await deliver(scoped, str(holder["_id"]), publish)
    if published:
        logger.info("relayed pending events", extra={"collection": collection, "count": published})
    return published


def outbox_relay(
    system: SystemCollections,
    store_of: Callable[[str], WorkspaceStore],
    collection: str,
    publish: Publish,
    *,
    every: float = 10.0,
    grace: timedelta = RELAY_GRACE,
) -> Periodic:
    """`relay_pending` for one collection every `every` seconds while the service runs."""
    return Periodic(
        functools.partial(relay_pending, system, store_of, collection, publish, grace=grace),
        every,
        failure="outbox relay failed",
        extra={"collection": collection},
    )
