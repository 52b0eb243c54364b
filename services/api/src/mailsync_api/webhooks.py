"""Webhook subscriptions of a workspace: created with a secret shown once, rotated, replayed.

The send service records and delivers the events (`mailsync_send.webhooks`); the api only
keeps the subscriptions and reads and resets deliveries.
"""

from datetime import timedelta
from urllib.parse import urlsplit

from mailsync_api.problems import conflict, invalid, not_found
from mailsync_shared.clock import utcnow
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.mail_servers.errors import MailServerError
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.webhooks import signing
from mailsync_shared.webhooks.documents import (
    DELIVERIES,
    LEASES,
    SUBSCRIPTIONS,
    WebhookDeliveryDocument,
    WebhookSubscriptionDocument,
)

# How long deliveries are also signed with the secret a rotation replaced.
PREVIOUS_SECRET_KEPT = timedelta(hours=24)
DEFAULT_PORTS = {"http": 80, "https": 443}


async def check_receiver(url: str, *, allow_private: bool) -> None:
    """The receiver's host must resolve to public addresses (unless the operator allows
    private ones); delivery checks again at every request, for DNS that changes later."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError as error:
        raise invalid("body.url", f"has an invalid port: {error}") from None
    try:
        await HostGuard(allow_private=allow_private).check(host, port)
    except MailServerError as error:
        raise invalid("body.url", str(error)) from None


async def load_subscription(
    store: WorkspaceStore, subscription_id: str
) -> WebhookSubscriptionDocument:
    document = await store.collection(SUBSCRIPTIONS).find_one({"_id": subscription_id})
    if document is None:
        raise not_found("webhook subscription")
    return WebhookSubscriptionDocument.from_document(document)


async def create(
    store: WorkspaceStore,
    cipher: CredentialCipher,
    *,
    url: str,
    event_types: list[str],
    enabled: bool,
    description: str,
) -> tuple[WebhookSubscriptionDocument, str]:
    """The stored subscription and its secret (kept only encrypted)."""
    secret = signing.new_secret()
    subscription = WebhookSubscriptionDocument(
        workspace_id=store.workspace_id,
        url=url,
        event_types=event_types,
        enabled=enabled,
        description=description,
        secret_encrypted=cipher.encrypt(secret),
    )
    await store.collection(SUBSCRIPTIONS).insert_one(subscription.to_document())
    return subscription, secret


async def rotate_secret(
    store: WorkspaceStore,
    cipher: CredentialCipher,
    subscription_id: str,
    *,
    keep_previous: bool,
) -> tuple[WebhookSubscriptionDocument, str]:
    """A new secret; the one it replaces keeps signing for a day unless `keep_previous` is off."""
    current = await load_subscription(store, subscription_id)
    secret = signing.new_secret()
    now = utcnow()
    changes = {
        "secret_encrypted": cipher.encrypt(secret),
        "previous_secret_encrypted": current.secret_encrypted if keep_previous else None,
        "previous_secret_until": now + PREVIOUS_SECRET_KEPT if keep_previous else None,
        "updated_at": now,
    }
    await store.collection(SUBSCRIPTIONS).update_one({"_id": subscription_id}, {"$set": changes})
    return current.model_copy(update=changes), secret


async def delete(store: WorkspaceStore, subscription_id: str) -> None:
    """The subscription, its delivery log and its lease; nothing more is sent to it."""
    result = await store.collection(SUBSCRIPTIONS).delete_many({"_id": subscription_id})
    if result.deleted_count == 0:
        raise not_found("webhook subscription")
    await store.collection(DELIVERIES).delete_many({"subscription_id": subscription_id})
    await store.collection(LEASES).delete_many({"_id": subscription_id})


async def replay(
    store: WorkspaceStore, subscription_id: str, delivery_id: str
) -> WebhookDeliveryDocument:
    """Send a delivered or failed event again, with the same `webhook-id`, in its turn."""
    await load_subscription(store, subscription_id)
    deliveries = store.collection(DELIVERIES)
    mine = {"_id": delivery_id, "subscription_id": subscription_id}
    now = utcnow()
    result = await deliveries.update_one(
        {**mine, "state": {"$in": ["delivered", "failed"]}},
        {
            "$set": {
                "state": "pending",
                "next_attempt_at": now,
                "first_attempt_at": None,
                "finished_at": None,
            }
        },
    )
    document = await deliveries.find_one(mine)
    if document is None:
        raise not_found("webhook delivery")
    if result.matched_count == 0:
        raise conflict("the delivery is pending already: it is being tried")
    return WebhookDeliveryDocument.from_document(document)
