"""Settings of the api service."""

from pydantic import Field, SecretStr

from mailsync_shared.settings import SecretSettings
from mailsync_shared.storage.attachments import MAX_ATTACHMENTS_BYTES


class Settings(SecretSettings):
    """The api's settings; read once in `__main__` and passed to `create_app`."""

    http_port: int = Field(default=8000, description="Port of the HTTP server.")
    max_page_size: int = Field(default=100, ge=1, description="Largest `limit` a list accepts.")
    mail_server_timeout: float = Field(
        default=15.0, gt=0, description="Seconds to wait for a mail server when connecting."
    )
    operator_token: SecretStr | None = Field(
        default=None,
        description=(
            "Bearer token that creating workspaces requires (MAILSYNC_OPERATOR_TOKEN); when "
            "unset, anyone who reaches the api can create one: fine on a laptop, not in "
            "production."
        ),
    )
    max_request_bytes: int = Field(
        default=2_000_000, ge=1024, description="Largest request body, except imports."
    )
    max_import_bytes: int = Field(
        default=20_000_000, ge=1024, description="Largest body of a bulk import."
    )
    max_import_rows: int = Field(default=10_000, ge=1, description="Most rows in one import.")
    mailbox_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        description=(
            "How long `POST /v1/send-requests` reuses a mailbox it read (owner, whether it is "
            "connected) before reading it again; 0 reads it for every request."
        ),
    )
    max_attachments_bytes: int = Field(
        default=MAX_ATTACHMENTS_BYTES,
        ge=0,
        description="Largest attachment upload, and total of a send request's attachments.",
    )
