"""Settings of the capture service."""

from pydantic import Field

from mailsync_shared.settings import OutboxWorkerSettings


class Settings(OutboxWorkerSettings):
    http_port: int = Field(default=8102, description="Port of the health endpoints.")
