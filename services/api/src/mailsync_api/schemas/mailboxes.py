"""Mailboxes over HTTP. Passwords go in, never come out."""

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
    model_validator,
)

from mailsync_api.mail_health import MailHealth
from mailsync_api.schemas.common import EmailAddress, Input, Name, no_line_breaks
from mailsync_api.schemas.mailbox_aliases import AliasOut
from mailsync_shared.storage.documents import MailboxDocument, Security, ServerAccount, Visibility
from mailsync_shared.visibility import Access, MailboxShare, Viewer, access

HostName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]-]+$"),
    AfterValidator(lambda host: host.lower()),
]
UserName = Annotated[
    str, StringConstraints(min_length=1, max_length=320), AfterValidator(no_line_breaks)
]
SyncScope = Literal["all", "client_only"]
OAuthText = Annotated[
    str, StringConstraints(min_length=1, max_length=1024), AfterValidator(no_line_breaks)
]


def token_endpoint_url(value: str) -> str:
    parsed = urlsplit(value)
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        raise ValueError("must be an http(s) URL")
    return value


TokenEndpoint = Annotated[
    str,
    StringConstraints(min_length=1, max_length=2048),
    AfterValidator(no_line_breaks),
    AfterValidator(token_endpoint_url),
]
RatePerMinute = Annotated[int, Field(ge=1, le=10_000)]


class ServerIn(Input):
    # Validation errors must not quote a rejected password back.
    model_config = Input.model_config | ConfigDict(hide_input_in_errors=True)

    host: HostName
    port: int = Field(ge=1, le=65535)
    security: Security = Field(
        default="tls", description="`tls` (implicit TLS), `starttls`, or `none` (plaintext)."
    )
    username: UserName
    auth: Literal["password", "xoauth2"] = Field(
        default="password",
        description="`password` (PLAIN/LOGIN), or `xoauth2` with an OAuth 2.0 refresh token.",
    )
    password: SecretStr | None = Field(
        default=None, min_length=1, max_length=1024, description="Required for `password`."
    )
    refresh_token: SecretStr | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="`xoauth2`: the refresh token; stored encrypted, never returned.",
    )
    token_endpoint: TokenEndpoint | None = Field(
        default=None, description="`xoauth2`: the provider's OAuth 2.0 token endpoint."
    )
    client_id: OAuthText | None = Field(default=None, description="`xoauth2`: the client id.")
    client_secret: SecretStr | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="`xoauth2`: the client secret, if the client has one; stored encrypted.",
    )
    scope: OAuthText | None = Field(default=None, description="`xoauth2`: scope to ask for.")

    @field_validator("password", "refresh_token", "client_secret")
    @classmethod
    def _single_line(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and any(char in value.get_secret_value() for char in "\r\n\x00"):
            raise ValueError("must not contain line breaks (CR, LF) or NUL")
        return value

    @model_validator(mode="after")
    def _credentials_for_auth(self) -> "ServerIn":
        if self.auth == "password" and self.password is None:
            raise ValueError("`password` is required with `auth: password`")
        if self.auth == "xoauth2":
            missing = [
                name
                for name in ("refresh_token", "token_endpoint", "client_id")
                if getattr(self, name) is None
            ]
            if missing:
                raise ValueError(f"`auth: xoauth2` needs {', '.join(missing)}")
        return self


class SyncIn(Input):
    scope: SyncScope = Field(
        default="all", description="`all` mail, or `client_only`: mail with known records."
    )
    backfill_days: int | None = Field(
        default=30, ge=0, le=3650, description="Days of past mail to import; null: none."
    )


class MailboxIn(Input):
    model_config = Input.model_config | ConfigDict(
        hide_input_in_errors=True,
        json_schema_extra={
            "examples": [
                {
                    "address": "olga@acme.test",
                    "display_name": "Olga Owner",
                    "imap": {
                        "host": "imap.acme.test",
                        "port": 993,
                        "security": "tls",
                        "username": "olga@acme.test",
                        "password": "app-password",
                    },
                    "smtp": {
                        "host": "smtp.acme.test",
                        "port": 465,
                        "security": "tls",
                        "username": "olga@acme.test",
                        "password": "app-password",
                    },
                    "sync": {"scope": "all", "backfill_days": 30},
                    "visibility": "metadata",
                }
            ]
        },
    )

    address: EmailAddress
    display_name: Name = ""
    imap: ServerIn
    smtp: ServerIn
    sync: SyncIn = Field(default_factory=SyncIn)
    visibility: Visibility = "metadata"
    append_to_sent: bool = Field(
        default=True, description="Put a copy of mail sent through Mailsync in the Sent folder."
    )
    send_rate_per_minute: RatePerMinute | None = Field(
        default=None, description="Messages it sends per minute at most; null: the service's."
    )


class MailboxPatch(Input):
    model_config = Input.model_config | ConfigDict(
        json_schema_extra={
            "examples": [{"visibility": "subject", "sync": {"scope": "all", "backfill_days": 90}}]
        }
    )

    display_name: Name | None = None
    sync: SyncIn | None = None
    visibility: Visibility | None = None
    append_to_sent: bool | None = None
    send_rate_per_minute: RatePerMinute | None = Field(
        default=None, description="Messages it sends per minute at most; null: the service's."
    )


class ServerOut(BaseModel):
    host: str
    port: int
    security: Security
    username: str
    auth: str
    has_credentials: bool = Field(description="False once the mailbox is disconnected.")

    @classmethod
    def of(cls, account: ServerAccount) -> "ServerOut":
        return cls(
            host=account.host,
            port=account.port,
            security=account.security,
            username=account.username,
            auth=account.auth,
            has_credentials=account.secret_encrypted is not None,
        )


class SyncOut(BaseModel):
    scope: str
    backfill_days: int | None


class FolderProgress(BaseModel):
    name: str
    role: str
    total: int = Field(
        description="Messages found in the folder's sync window, plus live mail since."
    )
    done: int = Field(description="Messages of those already synced.")
    last_uid: int


class GapOut(BaseModel):
    folder: str
    server: int = Field(description="Messages in the folder inside the sync window.")
    logged: int = Field(description="Of those, how many were logged.")
    missing: int = Field(description="Found on the server but not logged.")


class UnstoredOut(BaseModel):
    folder: str
    uid: int = Field(description="Its UID in the folder (under the folder's UIDVALIDITY).")
    uidvalidity: int
    size: int = Field(description="Its size on the server, in bytes.")
    reason: str = Field(
        description="`too_large` (over `max_message_bytes`) or `store_refused` (`detail` says why)."
    )
    detail: str
    at: datetime


class StatusOut(BaseModel):
    state: str
    reason: str | None
    updated_at: datetime
    last_synced_at: datetime | None
    gaps: list[GapOut] = Field(
        default_factory=list,
        description="Folders whose server held mail that was not logged, at the last comparison.",
    )
    reconciled_at: datetime | None = Field(
        default=None, description="When the server's messages were last compared with the log."
    )
    reconcile_requested_at: datetime | None = Field(
        default=None,
        description="A comparison asked for (`POST .../reconcile`) and not yet done.",
    )
    defects: dict[str, int] = Field(
        default_factory=dict,
        description="Logged messages of this mailbox per defect code (docs/ingest.md): what was "
        "odd or cut when they were read.",
    )
    unstored_total: int = Field(
        default=0, description="Messages found on the server and not stored, with `unstored`."
    )
    unstored: list[UnstoredOut] = Field(
        default_factory=list,
        description="The most recent 100 of those, each with its reason; the folder moved on.",
    )


class AddressProofOut(BaseModel):
    method: Literal["login", "admin"] = Field(
        description="`login`: the address is the login's own; `admin`: an admin approved it."
    )
    at: datetime
    by: str | None = Field(description="`admin`: who approved it (`user:<id>` or `key:<id>`).")


class MailboxOut(BaseModel):
    id: str
    address: str
    display_name: str
    owner_user_id: str | None = Field(
        description="The person who connected it; null when a system's API key did."
    )
    imap: ServerOut
    smtp: ServerOut
    sync: SyncOut
    visibility: Visibility
    append_to_sent: bool
    aliases: list[AliasOut] = Field(default_factory=list)
    send_rate_per_minute: int | None = None
    status: StatusOut
    folders: list[FolderProgress]
    connected_at: datetime
    disconnected_at: datetime | None
    address_proof: AddressProofOut | None = Field(
        default=None,
        description="How the address was proven; null while it awaits an admin's approval "
        "(state `awaiting_approval`: not synced, not sent from).",
    )

    @classmethod
    def of(
        cls, document: MailboxDocument, viewer: Viewer, health: MailHealth | None = None
    ) -> "MailboxOut":
        """The mailbox; what its status says of its mail (folder progress, gaps, defects, mail
        not stored) only for a viewer it shares at least metadata with."""
        counted = access(viewer, [MailboxShare(document.owner_user_id, document.visibility)])
        if counted is Access.NOTHING:
            health = None
        health = health or MailHealth()
        status = document.status.model_dump()
        if counted is Access.NOTHING:
            status["gaps"] = []
        return cls(
            id=document.id,
            address=document.address,
            display_name=document.display_name,
            owner_user_id=document.owner_user_id,
            imap=ServerOut.of(document.imap),
            smtp=ServerOut.of(document.smtp),
            sync=SyncOut(scope=document.sync.scope, backfill_days=document.sync.backfill_days),
            visibility=document.visibility,
            append_to_sent=document.append_to_sent,
            aliases=[AliasOut.of(alias) for alias in document.aliases],
            send_rate_per_minute=document.send_rate_per_minute,
            status=StatusOut(
                **status,
                reconcile_requested_at=document.reconcile_requested_at,
                defects=dict(sorted(health.defects.items())),
                unstored_total=health.unstored_total,
                unstored=[UnstoredOut(**entry.model_dump()) for entry in health.unstored],
            ),
            folders=[
                FolderProgress(
                    name=folder.name,
                    role=folder.role,
                    total=folder.total,
                    done=folder.done,
                    last_uid=folder.last_uid,
                )
                for folder in document.folders.values()
                if counted is not Access.NOTHING
            ],
            connected_at=document.connected_at,
            disconnected_at=document.disconnected_at,
            address_proof=(
                AddressProofOut(**document.address_proof.model_dump())
                if document.address_proof
                else None
            ),
        )


class SyncSummary(BaseModel):
    """The three questions about a mailbox, answered in plain words."""

    what_is_synced: str
    direction: str
    who_can_see: str
