"""Delivering recorded webhook events: one worker per subscription, in order, with retries.

Each enabled subscription gets one worker task, in the process that holds its lease (a
document in `webhook_leases`, renewed while the worker runs), so two send replicas never
deliver for the same subscription. A worker sends its subscription's oldest pending delivery
and only then the next, so events reach a receiver in the order they were recorded. A failed
delivery waits (exponential backoff) and holds back the ones behind it until it succeeds or,
after `webhook_give_up_after_seconds` of tries, is marked `failed`. A worker waits only for its
own receiver, each request bounded by `webhook_timeout_seconds`: a slow or failing receiver
delays no other subscription, and nothing in the event pipeline waits for any receiver.
"""

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from mailsync_send.settings import Settings
from mailsync_send.webhooks.metrics import Outcome, WebhookMetrics
from mailsync_send.webhooks.poster import WebhookPoster
from mailsync_shared.clock import utcnow
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.ids import new_id
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore
from mailsync_shared.webhooks.bindings import WebhookBindings
from mailsync_shared.webhooks.documents import (
    DELIVERIES,
    LEASES,
    SUBSCRIPTIONS,
    DeliveryAttempt,
    WebhookDeliveryDocument,
    WebhookSubscriptionDocument,
)

logger = logging.getLogger(__name__)

ATTEMPTS_KEPT = 50
# Deliveries read, sent in order, and written back together.
BATCH = 20
# How often finished deliveries older than the log's retention are removed.
PRUNE_EVERY_SECONDS = 3600.0


@dataclass
class _Lease:
    until: datetime = field(default_factory=utcnow)


def retry_delay(failures: int, *, base: float, most: float) -> float:
    """Seconds before the next try after `failures` failed ones: doubling, capped, jittered
    down by up to a tenth so that receivers coming back are not hit all at once."""
    delay: float = min(base * 2.0 ** max(failures - 1, 0), most)
    return delay * random.uniform(0.9, 1.0)


class WebhookDispatcher:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        cipher: CredentialCipher,
        poster: WebhookPoster,
        settings: Settings,
        metrics: WebhookMetrics,
        bindings: WebhookBindings,
    ) -> None:
        self._db = db
        self._bindings = bindings
        self._metrics = metrics
        self._cipher = cipher
        self._poster = poster
        self._settings = settings
        self._holder = new_id()
        self._lease_seconds = max(30.0, 3 * settings.webhook_timeout_seconds)
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wakeups: dict[str, asyncio.Event] = {}
        self._scanner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._scanner = asyncio.create_task(self._scan_forever(), name="webhook-scanner")

    async def stop(self) -> None:
        tasks = [*self._workers.values(), *([self._scanner] if self._scanner else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        await self._poster.close()

    def wake(self, subscription_id: str, workspace_id: str) -> None:
        """A delivery was recorded for the subscription: its worker looks at once."""
        self._ensure_worker(subscription_id, workspace_id)
        self._wakeups[subscription_id].set()

    async def _scan_forever(self) -> None:
        system = SystemCollections(self._db)
        pruned_at = 0.0
        while True:
            try:
                for item in await self._bindings.reconcile():
                    self._ensure_worker(str(item["_id"]), str(item["workspace_id"]))
                if time.monotonic() - pruned_at >= PRUNE_EVERY_SECONDS:
                    pruned_at = time.monotonic()
                    keep = timedelta(days=self._settings.webhook_log_days)
                    removed = await system.prune_webhook_deliveries(utcnow() - keep)
                    logger.info("webhook delivery log pruned", extra={"removed": removed})
            except Exception:
                logger.exception("looking for webhook subscriptions failed")
            await asyncio.sleep(self._settings.webhook_poll_seconds)

    def _ensure_worker(self, subscription_id: str, workspace_id: str) -> None:
        self._wakeups.setdefault(subscription_id, asyncio.Event())
        task = self._workers.get(subscription_id)
        if task is None or task.done():
            self._workers[subscription_id] = asyncio.create_task(
                self._work(subscription_id, workspace_id), name=f"webhook-{subscription_id}"
            )

    async def _work(self, subscription_id: str, workspace_id: str) -> None:
        store = WorkspaceStore(self._db, workspace_id)
        wakeup = self._wakeups[subscription_id]
        lease = _Lease()
        while True:
            try:
                document = await store.collection(SUBSCRIPTIONS).find_one({"_id": subscription_id})
                if document is None or not document.get("enabled"):
                    return
                subscription = WebhookSubscriptionDocument.from_document(document)
                if not await self._hold(store, subscription_id, lease):
                    await self._pause(wakeup, self._lease_seconds / 2)
                    continue
                due_in = await self._deliver_due(store, subscription, lease)
                if due_in is not None:
                    await self._pause(wakeup, min(due_in, self._settings.webhook_poll_seconds))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception(
                    "webhook worker failed; carrying on",
                    extra={"workspace_id": workspace_id, "subscription_id": subscription_id},
                )
                await asyncio.sleep(self._settings.webhook_poll_seconds)

    async def _deliver_due(
        self, store: WorkspaceStore, subscription: WebhookSubscriptionDocument, lease: "_Lease"
    ) -> float | None:
        """Send the oldest pending deliveries in order, up to a batch, stopping at the first
        that must wait for a retry; their outcomes are written together afterwards (a crash in
        between sends those again: at least once). Returns how long to wait when nothing more
        is due now, None to carry on at once."""
        batch = await store.collection(DELIVERIES).find(
            {"subscription_id": subscription.id, "state": "pending"},
            sort=[("seq", ASCENDING)],
            limit=BATCH,
        )
        if not batch:
            return self._settings.webhook_poll_seconds
        outcomes: list[tuple[dict[str, object], dict[str, object]]] = []
        wait: float | None = None
        try:
            for document in batch:
                delivery = WebhookDeliveryDocument.from_document(document)
                due_in = (delivery.next_attempt_at - utcnow()).total_seconds()
                if due_in > 0:
                    wait = due_in
                    break
                if not await self._hold(store, subscription.id, lease):
                    wait = self._lease_seconds / 2
                    break
                changes = await self._attempt(store, subscription, delivery)
                outcomes.append(({"_id": delivery.id}, {"$set": changes}))
                if "state" not in changes:
                    wait = 0.0  # retried later: the ones behind it wait their turn
                    break
        finally:
            # By `_id` alone: the store answers that from its index (a wider filter can read
            # the whole collection), and only this worker writes a pending delivery.
            await store.collection(DELIVERIES).update_each(outcomes)
        return wait if wait else None

    async def _hold(self, store: WorkspaceStore, subscription_id: str, lease: "_Lease") -> bool:
        """The subscription's lease is this process's for a while yet (renewed when half
        spent); False while another process holds it."""
        if (lease.until - utcnow()).total_seconds() >= self._lease_seconds / 2:
            return True
        renewed = await self._lease(store, subscription_id)
        if renewed is None:
            return False
        lease.until = renewed
        return True

    async def _pause(self, wakeup: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await wakeup.wait()
        wakeup.clear()

    async def _lease(self, store: WorkspaceStore, subscription_id: str) -> datetime | None:
        """Take or renew the subscription's lease; None while another process holds it."""
        now = utcnow()
        until = now + timedelta(seconds=self._lease_seconds)
        try:
            taken = await store.collection(LEASES).find_one_and_update(
                {
                    "_id": subscription_id,
                    "$or": [{"holder": self._holder}, {"until": {"$lt": now}}],
                },
                {"$set": {"holder": self._holder, "until": until}},
                upsert=True,
            )
        except DuplicateKeyError:
            return None
        return until if taken is not None else None

    def _secrets(self, subscription: WebhookSubscriptionDocument) -> list[str]:
        secrets = [self._cipher.decrypt(subscription.secret_encrypted)]
        previous = subscription.previous_secret_encrypted
        until = subscription.previous_secret_until
        if previous is not None and until is not None and until > utcnow():
            secrets.append(self._cipher.decrypt(previous))
        return secrets

    async def _attempt(
        self,
        store: WorkspaceStore,
        subscription: WebhookSubscriptionDocument,
        delivery: WebhookDeliveryDocument,
    ) -> dict[str, object]:
        """One try; the delivery's changes: `state` set when it is finished."""
        started = utcnow()
        outcome = await self._poster.post(
            subscription.url,
            delivery.event_id,
            delivery.body.encode(),
            self._secrets(subscription),
        )
        now = utcnow()
        attempt = DeliveryAttempt(
            at=started,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
        attempts = [*delivery.attempts, attempt][-ATTEMPTS_KEPT:]
        first = delivery.first_attempt_at or started
        changes: dict[str, object] = {
            "attempts": [item.model_dump() for item in attempts],
            "first_attempt_at": first,
        }
        ended: Outcome = "retrying"
        if outcome.delivered:
            ended = "delivered"
            changes |= {"state": "delivered", "finished_at": now}
        elif (now - first).total_seconds() >= self._settings.webhook_give_up_after_seconds:
            ended = "failed"
            changes |= {"state": "failed", "finished_at": now}
        else:
            failures = sum(1 for item in attempts if item.at >= first)
            delay = retry_delay(
                failures,
                base=self._settings.webhook_retry_base_seconds,
                most=self._settings.webhook_retry_max_delay_seconds,
            )
            changes["next_attempt_at"] = now + timedelta(seconds=delay)
        self._metrics.attempted(
            ended, outcome.duration_ms / 1000, answered=outcome.status_code is not None
        )
        logger.info(
            "webhook delivery attempted",
            extra={
                "workspace_id": store.workspace_id,
                "subscription_id": subscription.id,
                "event_id": delivery.event_id,
                "status_code": outcome.status_code,
                "outcome": ended,
            },
        )
        return changes
