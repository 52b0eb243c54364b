"""HTTP webhooks: subscriptions of the workspace, their delivery log and replays."""

import logging
from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pymongo import DESCENDING

from mailsync_api import webhooks
from mailsync_api.dependencies import (
    CipherDep,
    PageDep,
    SettingsDep,
    WebhookBindingsDep,
    WorkspaceDep,
)
from mailsync_api.pagination import Page, paginate
from mailsync_api.problems import not_found, problem_responses
from mailsync_api.schemas.common import RecordId
from mailsync_api.schemas.webhooks import (
    CreatedWebhook,
    DeliveryOut,
    WebhookIn,
    WebhookOut,
    WebhookPatch,
)
from mailsync_shared.clock import utcnow
from mailsync_shared.storage.client import Document
from mailsync_shared.webhooks.documents import (
    DELIVERIES,
    SUBSCRIPTIONS,
    DeliveryState,
    WebhookDeliveryDocument,
    WebhookSubscriptionDocument,
)

router = APIRouter(
    prefix="/v1/webhooks", tags=["webhooks"], responses=problem_responses(401, 403, 404, 422)
)

logger = logging.getLogger(__name__)

WebhookId = Annotated[RecordId, Path(description="Id of the webhook subscription.")]
DeliveryId = Annotated[RecordId, Path(description="Id of the delivery.")]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_webhook(
    body: WebhookIn,
    store: WorkspaceDep,
    cipher: CipherDep,
    settings: SettingsDep,
    bindings: WebhookBindingsDep,
) -> CreatedWebhook:
    """Subscribe a URL to public events; the signing secret is shown only in this answer."""
    await webhooks.check_receiver(body.url, allow_private=settings.allow_private_hosts)
    subscription, secret = await webhooks.create(
        store,
        cipher,
        url=body.url,
        event_types=list(body.event_types),
        enabled=body.enabled,
        description=body.description,
    )
    if subscription.enabled:
        await bindings.bind(store.workspace_id, subscription.event_types)
    logger.info(
        "webhook subscription created",
        extra={"workspace_id": store.workspace_id, "subscription_id": subscription.id},
    )
    return CreatedWebhook(**WebhookOut.of(subscription).model_dump(), secret=secret)


@router.get("")
async def list_webhooks(store: WorkspaceDep) -> list[WebhookOut]:
    """Every webhook subscription of the workspace, newest first; never the secrets."""
    documents = await store.collection(SUBSCRIPTIONS).find(
        {}, sort=[("created_at", DESCENDING)], limit=1000
    )
    return [WebhookOut.of(WebhookSubscriptionDocument.from_document(d)) for d in documents]


@router.get("/{webhook_id}")
async def get_webhook(webhook_id: WebhookId, store: WorkspaceDep) -> WebhookOut:
    """One webhook subscription."""
    return WebhookOut.of(await webhooks.load_subscription(store, webhook_id))


@router.patch("/{webhook_id}")
async def change_webhook(
    webhook_id: WebhookId,
    body: WebhookPatch,
    store: WorkspaceDep,
    settings: SettingsDep,
    bindings: WebhookBindingsDep,
) -> WebhookOut:
    """Change the URL, the event types, the description, or pause and resume deliveries."""
    current = await webhooks.load_subscription(store, webhook_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "url" in changes:
        await webhooks.check_receiver(changes["url"], allow_private=settings.allow_private_hosts)
    if changes:
        changes["updated_at"] = utcnow()
        await store.collection(SUBSCRIPTIONS).update_one({"_id": webhook_id}, {"$set": changes})
    changed = current.model_copy(update=changes)
    if changed.enabled and changes.keys() & {"enabled", "event_types"}:
        await bindings.bind(store.workspace_id, changed.event_types)
    return WebhookOut.of(changed)


@router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(webhook_id: WebhookId, store: WorkspaceDep) -> Response:
    """Remove the subscription and its delivery log; nothing more is sent to it."""
    await webhooks.delete(store, webhook_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{webhook_id}/rotate-secret")
async def rotate_webhook_secret(
    webhook_id: WebhookId,
    store: WorkspaceDep,
    cipher: CipherDep,
    keep_previous: Annotated[
        bool,
        Query(
            description="Keep signing with the old secret too for 24 hours (every delivery "
            "then carries two signatures), so the receiver can switch without a gap; `false` "
            "drops the old secret at once (it leaked)."
        ),
    ] = True,
) -> CreatedWebhook:
    """A new signing secret, shown only in this answer."""
    subscription, secret = await webhooks.rotate_secret(
        store, cipher, webhook_id, keep_previous=keep_previous
    )
    logger.info(
        "webhook secret rotated",
        extra={"workspace_id": store.workspace_id, "subscription_id": webhook_id},
    )
    return CreatedWebhook(**WebhookOut.of(subscription).model_dump(), secret=secret)


@router.get("/{webhook_id}/deliveries")
async def list_deliveries(
    webhook_id: WebhookId,
    store: WorkspaceDep,
    page: PageDep,
    state: Annotated[
        DeliveryState | None, Query(description="Only deliveries in this state.")
    ] = None,
) -> Page[DeliveryOut]:
    """The delivery log, newest event first: each try with the receiver's status code."""
    await webhooks.load_subscription(store, webhook_id)
    filter_: dict[str, object] = {"subscription_id": webhook_id}
    if state is not None:
        filter_["state"] = state

    async def render(documents: Sequence[Document]) -> list[DeliveryOut]:
        return [DeliveryOut.of(WebhookDeliveryDocument.from_document(d)) for d in documents]

    return await paginate(
        store.collection(DELIVERIES), filter_, page, sort_field="seq", render=render
    )


@router.get("/{webhook_id}/deliveries/{delivery_id}")
async def get_delivery(
    webhook_id: WebhookId, delivery_id: DeliveryId, store: WorkspaceDep
) -> DeliveryOut:
    """One delivery with its tries."""
    document = await store.collection(DELIVERIES).find_one(
        {"_id": delivery_id, "subscription_id": webhook_id}
    )
    if document is None:
        raise not_found("webhook delivery")
    return DeliveryOut.of(WebhookDeliveryDocument.from_document(document))


@router.post("/{webhook_id}/deliveries/{delivery_id}/replay", status_code=202)
async def replay_delivery(
    webhook_id: WebhookId, delivery_id: DeliveryId, store: WorkspaceDep
) -> DeliveryOut:
    """Send a delivered or failed event again, with the same `webhook-id`."""
    return DeliveryOut.of(await webhooks.replay(store, webhook_id, delivery_id))
