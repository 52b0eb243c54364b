"""The message as it moves through the pipeline: ingest -> capture -> associate."""

from datetime import datetime
from typing import Literal

from pydantic import Field

from mailsync_shared.contracts.envelope import Contract, Event

Direction = Literal["sent", "received"]
FolderRole = Literal["inbox", "sent", "all", "other"]


class Address(Contract):
    """One mailbox in an address header."""

    address: str = Field(description="Lower-cased addr-spec, e.g. `ann@client.test`.")
    name: str = Field(default="", description="Display name, decoded; may be empty.")


class MailSource(Contract):
    """Where a copy of the message lives in a connected mailbox."""

    mailbox_id: str
    folder: str = Field(description="Folder name on the server.")
    folder_role: FolderRole
    uidvalidity: int
    uid: int


class AutomationHints(Contract):
    """Header signals that a message was sent by a machine, not a person."""

    auto_submitted: str | None = Field(default=None, description="`Auto-Submitted` value.")
    list_unsubscribe: bool = Field(default=False, description="`List-Unsubscribe` present.")
    precedence: str | None = Field(default=None, description="`Precedence` value.")


class MailMessage(Contract):
    """Header-level facts about one message; the bytes stay in the raw store under `raw_id`."""

    mailbox_id: str = Field(description="The connected mailbox the message was seen in.")
    owner_address: str = Field(description="Address of that mailbox's owner.")
    direction: Direction = Field(description="`sent` when the owner wrote it.")
    source: MailSource | None = Field(
        default=None, description="IMAP location; absent for a message sent through Mailsync."
    )
    raw_id: str = Field(description="Id of the raw RFC 5322 bytes in the raw message store.")
    size: int = Field(ge=0, description="Size of the raw message in bytes.")
    message_id: str = Field(description="`Message-ID` with angle brackets (synthesized if absent).")
    in_reply_to: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    subject: str = ""
    date: datetime | None = None
    from_: Address | None = Field(default=None, alias="from")
    to: list[Address] = Field(default_factory=list)
    cc: list[Address] = Field(default_factory=list)
    bcc: list[Address] = Field(default_factory=list)
    reply_to: list[Address] = Field(default_factory=list)
    automation: AutomationHints = Field(default_factory=AutomationHints)
    provider_thread_id: str | None = Field(default=None, description="E.g. Gmail `X-GM-THRID`.")
    provider_message_id: str | None = Field(default=None, description="E.g. Gmail `X-GM-MSGID`.")
    send_request_id: str | None = Field(
        default=None, description="Set when the message was sent through Mailsync."
    )
    defects: list[str] = Field(
        default_factory=list,
        description=(
            "What was odd or cut when the message was read at ingest, as codes: "
            "`header_truncated`, `header_line_skipped`, `charset_replaced`, `addresses_cut`, "
            "`date_out_of_range`, `headers_unreadable`, `too_many_parts`, `nesting_too_deep`, "
            "`body_truncated` (docs/ingest.md says what is kept for each). Parse the body "
            "cautiously when set."
        ),
    )

    model_config = Contract.model_config | {"populate_by_name": True}

    def participants(self, *, bcc: bool = True) -> list[Address]:
        """Every address on the message, sender first, without repeats; Bcc only if `bcc`."""
        seen: set[str] = set()
        result: list[Address] = []
        candidates = [self.from_] if self.from_ else []
        hidden = self.bcc if bcc else []
        for address in [*candidates, *self.to, *self.cc, *hidden, *self.reply_to]:
            if address.address not in seen:
                seen.add(address.address)
                result.append(address)
        return result


class MessageFetched(Event):
    """Ingest found a message in a mailbox folder and stored its bytes."""

    type: Literal["mailsync.message.fetched.v1"] = "mailsync.message.fetched.v1"
    data: MailMessage


class CapturedContact(Contract):
    contact_id: str
    address: str


class CapturedMessage(Contract):
    message: MailMessage
    contacts: list[CapturedContact] = Field(
        default_factory=list, description="Contacts created for this message's participants."
    )


class MessageCaptured(Event):
    """Capture applied the workspace's contact rules to a message."""

    type: Literal["mailsync.message.captured.v1"] = "mailsync.message.captured.v1"
    data: CapturedMessage
