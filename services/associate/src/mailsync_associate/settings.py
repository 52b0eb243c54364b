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
