"""Settings shared by every service. Each service subclasses `ServiceSettings` (or one of
its refinements below) and adds its own port and limits.

Settings are read when a service starts (`Settings()` in its entry point) and passed into
its app factory; nothing reads the environment at import time.
"""

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from mailsync_shared.storage.ferretdb import StoreKind


class ServiceSettings(BaseSettings):
    """Connection settings every service needs; defaults match `make infra`."""

    model_config = SettingsConfigDict(env_prefix="MAILSYNC_", extra="ignore", frozen=True)

    rabbitmq_url: str = Field(
        default="amqp://guest:guest@127.0.0.1:5672/",
        description="AMQP URL of the RabbitMQ broker.",
    )
    mongodb_url: str = Field(
        default="mongodb://127.0.0.1:27017/",
        validation_alias=AliasChoices("MAILSYNC_MONGODB_URL", "MONGODB_URL"),
        description="URL of the MongoDB-compatible server (MongoDB 7 or FerretDB).",
    )
    mongodb_database: str = Field(default="mailsync", description="Database name.")
    store: StoreKind = Field(
        default="ferretdb",
        description=(
            "Which server `mongodb_url` is: `ferretdb` (FerretDB v1, the local default) takes "
            "the measures of `mailsync_shared.storage.ferretdb`; `mongodb` (MongoDB 7) none."
        ),
    )
    log_level: str = Field(default="INFO", description="Python logging level name.")
    http_host: str = Field(
        default="127.0.0.1",
        description="Address the HTTP server binds: the api, or a worker's health endpoints.",
    )


class SecretSettings(ServiceSettings):
    """Settings of a service that handles mailbox credentials and connects to mail servers
    (or webhook receivers)."""

    secret_key: SecretStr = Field(
        validation_alias=AliasChoices("MAILSYNC_SECRET_KEYS", "MAILSYNC_SECRET_KEY", "secret_key"),
        description=(
            "Fernet keys (32 url-safe base64-encoded bytes each) that encrypt mailbox "
            "credentials at rest: `MAILSYNC_SECRET_KEYS`, comma-separated, newest first (new "
            "credentials use the first, any decrypts), or one key in `MAILSYNC_SECRET_KEY`. "
            "Generate one with `python -m mailsync_shared.crypto`."
        ),
    )
    allow_private_hosts: bool = Field(
        default=False,
        description=(
            "Allow mail servers and webhook receivers on private, loopback or link-local "
            "addresses (MAILSYNC_ALLOW_PRIVATE_HOSTS); for local development and tests."
        ),
    )


class OutboxWorkerSettings(ServiceSettings):
    """Settings of a worker that handles fetched or captured mail in batches and publishes
    its events through an outbox (capture, associate)."""

    outbox_relay_seconds: float = Field(
        default=10.0,
        description="How often events left in the outbox by a crash are published.",
    )
    prefetch: int = Field(
        default=30,
        ge=1,
        description="Deliveries held unacknowledged at once (each may hold a batch of messages).",
    )
    batch_size: int = Field(
        default=200, ge=1, description="Most messages of one workspace handled together."
    )
