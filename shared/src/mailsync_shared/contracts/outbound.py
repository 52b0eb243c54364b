"""Sending mail: the command from the api and the events of the send service."""

from typing import Literal

from pydantic import Field

from mailsync_shared.contracts.envelope import Contract, Event
from mailsync_shared.contracts.mail import MailMessage


class SendRequest(Contract):
    send_request_id: str = Field(description="Id of the stored send request to carry out.")


class SendRequested(Event):
    """Command: send the stored send request (api -> send)."""

    type: Literal["mailsync.send.requested.v1"] = "mailsync.send.requested.v1"
    data: SendRequest


class SentEmail(Contract):
    send_request_id: str
    thread_id: str | None = Field(default=None, description="Thread the message replies on.")
    message: MailMessage


class EmailSent(Event):
    """The user's SMTP server accepted a message sent through Mailsync."""

    type: Literal["mailsync.email.sent.v1"] = "mailsync.email.sent.v1"
    data: SentEmail


class SendFailure(Contract):
    send_request_id: str
    mailbox_id: str
    reason: str = Field(description="The server's reply or the error, for people to read.")
    permanent: bool = Field(description="False when the failure may pass on a later try.")


class EmailSendFailed(Event):
    """A send request failed; `permanent` says whether it will be tried again."""

    type: Literal["mailsync.email.send_failed.v1"] = "mailsync.email.send_failed.v1"
    data: SendFailure
