"""Mailboxes over HTTP. Passwords go in, never come out."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
)

from mailsync_api.schemas.common import EmailAddress, Input, Name, no_line_breaks
from mailsync_shared.storage.documents import MailboxDocument, Security, ServerAccount, Visibility

HostName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9.:\[\]-]+$"),
    AfterValidator(lambda host: host.lower()),
]
UserName = Annotated[
    str, StringConstraints(min_length=1, max_length=320), AfterValidator(no_line_breaks)
]
SyncScope = Literal["all", "client_only"]


class ServerIn(Input):
    # Validation errors must not quote a rejected password back.
    model_config = Input.model_config | ConfigDict(hide_input_in_errors=True)

    host: HostName
    port: int = Field(ge=1, le=65535)
    security: Security = Field(
        default="tls", description="`tls` (implicit TLS), `starttls`, or `none` (plaintext)."
    )
    username: UserName
    password: SecretStr = Field(min_length=1, max_length=1024)

    @field_validator("password")
    @classmethod
    def _single_line(cls, value: SecretStr) -> SecretStr:
        if any(char in value.get_secret_value() for char in "\r\n\x00"):
            raise ValueError("must not contain line breaks (CR, LF) or NUL")
        return value


class SyncIn(Input):
    scope: SyncScope = Field(
        default="all", description="`all` mail, or `client_only`: mail with known records."
    )
    backfill_days: int | None = Field(
        default=30, ge=0, le=3650, description="Days of past mail to import; null: none."
    )


class MailboxIn(Input):
    model_config = Input.model_config | ConfigDict(hide_input_in_errors=True)

    address: EmailAddress
    display_name: Name = ""
    imap: ServerIn
    smtp: ServerIn
    sync: SyncIn = Field(default_factory=SyncIn)
    visibility: Visibility = "metadata"
    append_to_sent: bool = Field(
        default=True, description="Put a copy of mail sent through Mailsync in the Sent folder."
    )


class MailboxPatch(Input):
    display_name: Name | None = None
    sync: SyncIn | None = None
    visibility: Visibility | None = None
    append_to_sent: bool | None = None


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
    total: int = Field(description="Messages found in the folder's sync window.")
    done: int = Field(description="Messages of those already synced.")
    last_uid: int


class StatusOut(BaseModel):
    state: str
    reason: str | None
    updated_at: datetime
    last_synced_at: datetime | None


class MailboxOut(BaseModel):
    id: str
    address: str
    display_name: str
    imap: ServerOut
    smtp: ServerOut
    sync: SyncOut
    visibility: Visibility
    append_to_sent: bool
    status: StatusOut
    folders: list[FolderProgress]
    connected_at: datetime
    disconnected_at: datetime | None

    @classmethod
    def of(cls, document: MailboxDocument) -> "MailboxOut":
        return cls(
            id=document.id,
            address=document.address,
            display_name=document.display_name,
            imap=ServerOut.of(document.imap),
            smtp=ServerOut.of(document.smtp),
            sync=SyncOut(scope=document.sync.scope, backfill_days=document.sync.backfill_days),
            visibility=document.visibility,
            append_to_sent=document.append_to_sent,
            status=StatusOut(**document.status.model_dump()),
            folders=[
                FolderProgress(
                    name=folder.name,
                    role=folder.role,
                    total=folder.total,
                    done=folder.done,
                    last_uid=folder.last_uid,
                )
                for folder in document.folders.values()
            ],
            connected_at=document.connected_at,
            disconnected_at=document.disconnected_at,
        )


class SyncSummary(BaseModel):
    """The three questions about a mailbox, answered in plain words."""

    what_is_synced: str
    direction: str
    who_can_see: str
