"""Settings of the api service."""

from pydantic import Field

from mailsync_shared.settings import SecretSettings


class Settings(SecretSettings):
    """The api's settings; read once in `__main__` and passed to `create_app`."""

    http_host: str = Field(default="127.0.0.1", description="Address the HTTP server binds.")
    http_port: int = Field(default=8000, description="Port of the HTTP server.")
    allow_private_hosts: bool = Field(
        default=False,
        description=(
            "Accept mail server hosts that resolve to private, loopback or link-local "
            "addresses (MAILSYNC_ALLOW_PRIVATE_HOSTS); for local development and tests."
        ),
    )
    max_page_size: int = Field(default=100, ge=1, description="Largest `limit` a list accepts.")
    mail_server_timeout: float = Field(
        default=15.0, gt=0, description="Seconds to wait for a mail server when connecting."
    )
