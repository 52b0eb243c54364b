"""The shape of stored documents that more than one service reads or writes.

Every document carries `workspace_id` (added by `WorkspaceCollection`) and a string `_id`.
HTTP schemas live in the api; these are storage shapes only.
"""

from datetime import datetime
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.mail import Address, AutomationHints, Direction, MailSource
from mailsync_shared.contracts.records import LinkReason
from mailsync_shared.ids import new_id

Visibility = Literal["private", "metadata", "subject", "workspace"]
Security = Literal["none", "starttls", "tls"]
MailboxState = Literal[
    "awaiting_approval", "connecting", "backfilling", "live", "error", "disconnected"
]
# A mailbox in one of these states is neither synced nor sent from.
OUT_OF_SERVICE: tuple[MailboxState, ...] = ("awaiting_approval", "disconnected")
SendState = Literal["queued", "sending", "sent", "failed", "unknown", "cancelled"]
CapturePolicy = Literal["none", "sent", "sent_and_received"]


class StoredDocument(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(default_factory=new_id, alias="_id")
    workspace_id: str

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="python")

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Self:
        return cls.model_validate(document)


class ServerAccount(BaseModel):
    """How to reach one of the mailbox's servers; the password is stored encrypted.

    Every stored secret is a field named `*_encrypted`; disconnecting erases them all.
    """

    host: str
    port: int
    security: Security = "tls"
    username: str
    auth: Literal["password", "xoauth2"] = "password"
    secret_encrypted: str | None = Field(
        default=None,
        description="Fernet token of the password, or of the OAuth refresh token for `xoauth2`.",
    )
    token_endpoint: str | None = Field(
        default=None, description="`xoauth2`: the OAuth 2.0 token endpoint that refreshes tokens."
    )
    client_id: str | None = Field(default=None, description="`xoauth2`: the OAuth client id.")
    client_secret_encrypted: str | None = Field(
        default=None, description="`xoauth2`: Fernet token of the client secret, if it has one."
    )
    scope: str | None = Field(default=None, description="`xoauth2`: scope asked for on refresh.")


SECRET_FIELDS: tuple[str, ...] = tuple(
    name for name in ServerAccount.model_fields if name.endswith("_encrypted")
)


class SyncPolicy(BaseModel):
    scope: Literal["all", "client_only"] = "all"
    backfill_days: int | None = Field(
        default=30, description="Days of past mail to import; None imports from connection on."
    )


class FolderCheckpoint(BaseModel):
    """How far one folder has been synced; advanced only after the broker confirmed."""

    name: str
    role: str
    uidvalidity: int
    last_uid: int = 0
    highest_modseq: int | None = None
    total: int = 0
    done: int = 0
    backfill_since: datetime | None = Field(
        default=None, description="Start of the backfill window, fixed when first planned."
    )
    backfill_floor: int | None = Field(
        default=None,
        description=(
            "Newest-first backfill: every UID in the window from here up to the first `last_uid` "
            "is published; None once the backfill is complete."
        ),
    )


class FolderGap(BaseModel):
    """A folder whose server holds messages (inside the window) that were never logged."""

    folder: str
    server: int = Field(description="Messages in the folder inside the window, up to `last_uid`.")
    logged: int = Field(description="Of those, how many are on a logged message.")
    missing: int = Field(description="server - logged: found on the server, not logged.")


class MailboxStatus(BaseModel):
    state: MailboxState = "connecting"
    reason: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)
    last_synced_at: datetime | None = None
    gaps: list[FolderGap] = Field(
        default_factory=list, description="Folders with unlogged mail at the last reconciliation."
    )
    reconciled_at: datetime | None = Field(
        default=None, description="When server and log were last compared."
    )


class Lease(BaseModel):
    """Who holds the mailbox; the term document in `mailbox_lease_terms` says until when."""

    owner: str
    until: datetime = Field(description="When the term was due to end as it was won.")
    term: int = Field(default=0, description="The lease term won in `mailbox_lease_terms`.")


class AddressProof(BaseModel):
    """Why the mailbox may use its address: it is the login's own, or an admin vouched."""

    method: Literal["login", "admin"]
    at: datetime = Field(default_factory=utcnow)
    by: str | None = Field(default=None, description="`admin`: who approved, as `user:<id>`.")


class MailboxAlias(BaseModel):
    """Another address the mailbox may send as; only a verified one is used as From."""

    address: str
    name: str = ""
    verified: bool = False
    verified_at: datetime | None = None
    verified_by: str | None = Field(default=None, description="Who verified it, as `user:<id>`.")


class MailboxDocument(StoredDocument):
    address: str
    display_name: str = ""
    aliases: list[MailboxAlias] = Field(default_factory=list)
    send_rate_per_minute: int | None = Field(
        default=None, description="Messages per minute sent through it; None: the service's."
    )
    owner_user_id: str | None = None
    imap: ServerAccount
    smtp: ServerAccount
    append_to_sent: bool = True
    sync: SyncPolicy = Field(default_factory=SyncPolicy)
    visibility: Visibility = "metadata"
    status: MailboxStatus = Field(default_factory=MailboxStatus)
    folders: dict[str, FolderCheckpoint] = Field(default_factory=dict)
    lease: Lease | None = None
    connected_at: datetime = Field(default_factory=utcnow)
    disconnected_at: datetime | None = None
    reconcile_requested_at: datetime | None = Field(
        default=None, description="Set by the api; ingest reconciles and clears it."
    )
    erased_at: datetime | None = Field(
        default=None, description="When its synced mail was erased; work still queued is dropped."
    )
    address_proof: AddressProof | None = Field(
        default=None, description="How the address was proven; None while it awaits approval."
    )

    @property
    def in_service(self) -> bool:
        """Synced and sent from: connected, and its address proven."""
        return self.status.state not in OUT_OF_SERVICE

    def can_send_as(self, address: str) -> bool:
        """Whether From may be `address`: the mailbox's own address or a verified alias."""
        wanted = address.strip().lower()
        return wanted == self.address.strip().lower() or any(
            alias.verified and alias.address.strip().lower() == wanted for alias in self.aliases
        )


class ContactDocument(StoredDocument):
    name: str = ""
    emails: list[str]
    company_id: str | None = None
    external_id: str | None = None
    source: Literal["api", "capture", "import"] = "api"
    captured_message_id: str | None = Field(
        default=None, description="`Message-ID` of the message capture created the contact from."
    )
    created_at: datetime = Field(default_factory=utcnow)
    edited_at: datetime | None = Field(
        default=None,
        description="When a person last changed the contact; capture never retracts it then.",
    )
    retracted_at: datetime | None = Field(
        default=None,
        description=(
            "Set when a rule change made a captured contact no longer qualify; a retracted "
            "contact is kept but not linked to new mail, and capture may reinstate it."
        ),
    )
    retracted_rule: str | None = Field(default=None, description="The rule that retracted it.")


class CompanyDocument(StoredDocument):
    name: str
    domains: list[str] = Field(default_factory=list)
    external_id: str | None = None
    source: Literal["api", "capture", "import"] = "api"
    created_at: datetime = Field(default_factory=utcnow)


class DealDocument(StoredDocument):
    name: str
    stage: str = "open"
    status: Literal["open", "won", "lost"] = "open"
    contact_ids: list[str] = Field(default_factory=list)
    company_id: str | None = None
    value: float | None = None
    external_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)


class MessageDocument(StoredDocument):
    """One logged email per `Message-ID` per workspace, with a source per mailbox copy."""

    message_id: str
    thread_id: str
    mailbox_ids: list[str]
    sources: list[MailSource] = Field(default_factory=list)
    direction: Direction
    from_: Address | None = Field(default=None, alias="from")
    to: list[Address] = Field(default_factory=list)
    cc: list[Address] = Field(default_factory=list)
    bcc: list[Address] = Field(
        default_factory=list, description="Blind copies, known only on the sender's copy."
    )
    owner_address: str = Field(
        default="", description="Owner of the mailbox it was first logged from (`direction`)."
    )
    automation: AutomationHints = Field(default_factory=AutomationHints)
    subject: str = ""
    date: datetime | None = None
    body_text: str = ""
    in_reply_to: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    raw_id: str
    send_request_id: str | None = None
    defects: list[str] = Field(
        default_factory=list,
        description="What was odd or cut when it was read (`MailMessage.defects`).",
    )
    logged_at: datetime = Field(default_factory=utcnow)
    events_published: bool = Field(
        default=False,
        exclude=True,
        description=(
            "True once the public events about logging it were confirmed: read from its marker"
            " in `announced_messages` (same `_id`), never stored on the message itself."
        ),
    )


class ThreadDocument(StoredDocument):
    subject: str = ""
    subject_key: str = Field(default="", description="Normalized subject for the fallback match.")
    provider_thread_ids: list[str] = Field(
        default_factory=list, description="`<mailbox_id>:<provider thread id>` of its messages."
    )
    participants: list[str] = Field(default_factory=list)
    message_ids: list[str] = Field(
        default_factory=list, description="`Message-ID`s its messages are or mention."
    )
    logged_message_ids: list[str] = Field(
        default_factory=list, description="`Message-ID`s of its stored messages."
    )
    loose_subject_keys: list[str] = Field(
        default_factory=list,
        description="Subject keys of its messages without In-Reply-To or References (the ones "
        "the subject fallback may join).",
    )
    loose_reply_subject_keys: list[str] = Field(
        default_factory=list,
        description="Of those, the keys of messages that look like a reply or forward.",
    )
    mailbox_ids: list[str] = Field(default_factory=list)
    contact_ids: list[str] = Field(default_factory=list)
    company_ids: list[str] = Field(default_factory=list)
    deal_ids: list[str] = Field(default_factory=list)
    link_reasons: list[LinkReason] = Field(default_factory=list)
    manually_linked: bool = False
    automated: str | None = Field(
        default=None,
        description="Why all its mail so far is bulk or automated (linked to contacts only); "
        "None once a person wrote in it.",
    )
    manually_linked_by: str | None = Field(default=None, description="Who set the links.")
    manually_linked_at: datetime | None = None
    private: bool = False
    first_message_at: datetime | None = None
    last_message_at: datetime | None = None
    message_count: int = 0


class AttachmentRef(BaseModel):
    """A file sent with a request; its bytes are in the `attachments` collection."""

    attachment_id: str = Field(description="Id from `store_attachment` (sha256 of the bytes).")
    filename: str
    content_type: str = "application/octet-stream"
    size: int = Field(ge=0)


class ForwardOf(BaseModel):
    """The message a request forwards; its raw bytes are attached as `message/rfc822`."""

    raw_id: str
    message_id: str = ""


class SendRequestDocument(StoredDocument):
    mailbox_id: str
    idempotency_key: str
    requested_by: str | None = Field(
        default=None,
        description="Who asked (`user:<id>` or `key:<id>`); the idempotency key is theirs alone.",
    )
    state: SendState = "queued"
    from_: Address = Field(alias="from")
    to: list[Address]
    cc: list[Address] = Field(default_factory=list)
    bcc: list[Address] = Field(default_factory=list)
    subject: str
    body_text: str
    body_html: str | None = None
    in_reply_to: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    message_id: str = Field(description="Generated once per request, reused on every try.")
    thread_id: str | None = None
    attempts: int = 0
    error: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    claimed_until: datetime | None = Field(
        default=None, description="While `sending`: until when the current attempt owns it."
    )
    raw_id: str | None = Field(default=None, description="Raw bytes of the sent message.")
    sent_at: datetime | None = None
    reported_at: datetime | None = Field(
        default=None, description="When `email.sent` was published for the sent message."
    )
    published_at: datetime | None = Field(
        default=None, description="When `SendRequested` was confirmed by the broker."
    )
    attachments: list[AttachmentRef] = Field(default_factory=list)
    forward_of: ForwardOf | None = None
    send_at: datetime | None = Field(
        default=None, description="Not sent before this time; None sends at once."
    )
    next_attempt_at: datetime | None = Field(
        default=None,
        description="While `queued`: when the scheduler hands it to the sender next (a retry, "
        "a scheduled send, or a send deferred by the mailbox's rate limit).",
    )
    dispatched_at: datetime | None = Field(
        default=None, description="When the scheduler last handed it to the sender."
    )
    data_started_at: datetime | None = Field(
        default=None,
        description="Set just before the message data goes to the server in the current "
        "attempt; a crashed attempt without it certainly did not deliver.",
    )
    cancelled_at: datetime | None = None
