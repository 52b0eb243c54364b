"""Settings of the send service."""

from pydantic import Field

from mailsync_shared.settings import SecretSettings


class Settings(SecretSettings):
    http_host: str = Field(default="127.0.0.1", description="Address of the health endpoints.")
    http_port: int = Field(default=8104, description="Port of the health endpoints.")
    smtp_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of each SMTP connect and command."
    )
    imap_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Timeout of each IMAP command (Sent folder copy, checks)."
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
    prefetch: int = Field(default=16, ge=1, description="Send requests handled at once.")
    allow_private_hosts: bool = Field(
        default=False,
        description=(
            "Allow SMTP and IMAP servers on private, loopback or link-local addresses "
            "(local development and tests)."
        ),
    )
