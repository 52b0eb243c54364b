"""Settings of the associate service."""

from pydantic import Field

from mailsync_shared.settings import OutboxWorkerSettings


class Settings(OutboxWorkerSettings):
    http_port: int = Field(default=8103, description="Port of the health endpoints.")
