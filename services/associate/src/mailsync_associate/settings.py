"""Settings of the associate service."""

from pydantic import Field

from mailsync_shared.settings import ServiceSettings


class Settings(ServiceSettings):
    http_host: str = Field(default="127.0.0.1", description="Address of the health endpoints.")
    http_port: int = Field(default=8103, description="Port of the health endpoints.")
    outbox_relay_seconds: float = Field(
        default=10.0,
        description="How often events left in threads' outboxes by a crash are published.",
    )
    prefetch: int = Field(
        default=30,
        ge=1,
        description="Deliveries held unacknowledged at once (each may hold a batch of messages).",
    )
    batch_size: int = Field(
        default=200, ge=1, description="Most messages of one workspace logged together."
    )
