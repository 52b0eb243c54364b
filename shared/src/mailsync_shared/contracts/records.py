"""Public events about logged mail, threads and contacts (other systems subscribe to these)."""

from datetime import datetime
from typing import Literal

from pydantic import Field

from mailsync_shared.contracts.envelope import Contract, Event
from mailsync_shared.contracts.mail import Address, Direction


class LoggedEmail(Contract):
    email_id: str = Field(description="Mailsync id of the logged message.")
    thread_id: str
    mailbox_id: str
    message_id: str = Field(description="The `Message-ID` header.")
    direction: Direction
    subject: str
    date: datetime | None
    participants: list[Address]


class EmailLogged(Event):
    """A message was recorded for the first time in a workspace."""

    type: Literal["mailsync.email.logged.v1"] = "mailsync.email.logged.v1"
    data: LoggedEmail


class LinkReason(Contract):
    record_type: Literal["contact", "company", "deal"]
    record_id: str
    reason: str = Field(description="Why the thread is linked to the record, in plain words.")


class AssociatedThread(Contract):
    thread_id: str
    contact_ids: list[str]
    company_ids: list[str]
    deal_ids: list[str]
    reasons: list[LinkReason]
    manual: bool = Field(default=False, description="True when a person set the links.")


class ThreadAssociated(Event):
    """A thread's links to contacts, companies or deals changed."""

    type: Literal["mailsync.thread.associated.v1"] = "mailsync.thread.associated.v1"
    data: AssociatedThread


class CapturedContactDetails(Contract):
    contact_id: str
    address: str
    name: str
    rule: str = Field(description="The capture rule that decided to create the contact.")
    mailbox_id: str
    message_id: str


class ContactCaptured(Event):
    """Capture created a contact from a message participant."""

    type: Literal["mailsync.contact.captured.v1"] = "mailsync.contact.captured.v1"
    data: CapturedContactDetails
