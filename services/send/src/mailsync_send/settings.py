"""Settings of the send service."""

from pydantic import Field

from mailsync_shared.settings import SecretSettings
from mailsync_shared.storage.attachments import MAX_ATTACHMENTS_BYTES


class Settings(SecretSettings):
    http_port: int = Field(default=8104, description="Port of the health endpoints.")
    smtp_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of each SMTP connect and command."
    )
    imap_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of each IMAP command (Sent folder copy, checks)."
    )
    token_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of an OAuth token refresh (XOAUTH2 mailboxes)."
    )
    claim_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description=(
            "How long one attempt may hold a request in `sending`; a request found `sending` "
            "after this long is taken to be left behind by a crashed worker and recovered."
        ),
    )
    max_attempts: int = Field(
        default=5, ge=1, description="SMTP attempts per request before it is marked failed."
    )
    retry_backoff_seconds: float = Field(
        default=2.0, ge=0, description="Delay before the first retry; doubles on every retry."
    )
    retry_backoff_max_seconds: float = Field(
        default=60.0, ge=0, description="Upper bound of the delay between retries."
    )
    send_rate_per_minute: int = Field(
        default=30,
        ge=1,
        description=(
            "Messages per minute one mailbox sends, unless the mailbox sets its own. 30 is "
            "Microsoft 365's per-mailbox limit, the lowest of the common providers; requests "
            "over it wait for the next minute, none is dropped."
        ),
    )
    max_attachments_bytes: int = Field(
        default=MAX_ATTACHMENTS_BYTES,
        ge=0,
        description="Total size of a request's attachments, the forwarded message included.",
    )
    scheduler_interval_seconds: float = Field(
        default=1.0,
        gt=0,
        description="How often due requests (scheduled, retried, deferred) are handed on.",
    )
    redispatch_after_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "A request untouched this long while it should be moving (its `SendRequested` was "
            "lost, or its report never went out) is handed to the sender again."
        ),
    )
    prefetch: int = Field(
        default=1000,
        ge=1,
        description="Send requests held at once; each mailbox sends on its own SMTP sessions.",
    )
    smtp_connections_per_mailbox: int = Field(
        default=4,
        ge=1,
        description=(
            "SMTP sessions one mailbox uses at once; they are kept open and reused for the "
            "next message."
        ),
    )
    mailbox_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description=(
            "How long the sender reuses a mailbox it read (account, limits, whether it is "
            "connected) before reading it again; a disconnect takes effect within this time."
        ),
    )
    webhook_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description=(
            "Longest one webhook request may take, connecting and answering included; a "
            "receiver slower than this counts as failed and is retried."
        ),
    )
    webhook_retry_base_seconds: float = Field(
        default=5.0,
        gt=0,
        description="Delay before a failed webhook delivery's first retry; doubles every retry.",
    )
    webhook_retry_max_delay_seconds: float = Field(
        default=4 * 3600.0,
        gt=0,
        description="Upper bound of the delay between two tries of one webhook delivery.",
    )
    webhook_give_up_after_seconds: float = Field(
        default=24 * 3600.0,
        gt=0,
        description=(
            "How long a webhook delivery is retried from its first try; a delivery still "
            "failing after this is marked `failed` and the subscription moves on to the next."
        ),
    )
    webhook_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        description=(
            "How often the webhook dispatcher looks for subscriptions, replays and deliveries "
            "due (new events wake it at once)."
        ),
    )
    webhook_subscriptions_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description=(
            "How long a workspace's webhook subscriptions are reused when recording events; a "
            "new or changed subscription applies to events within this time."
        ),
    )
    webhook_log_days: float = Field(
        default=30.0,
        gt=0,
        description=(
            "How long delivered and failed webhook deliveries stay in the delivery log (and "
            "can be replayed); pending ones stay until they finish."
        ),
    )
