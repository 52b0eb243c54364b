"""Bulk and automated mail: which messages a machine sent, and why they are linked narrowly.

Newsletters, notifications and auto-replies at a customer's domain say nothing about a deal
or a company. Such mail is logged on a contact whose address it carries, but it is never
linked to deals, nor to a company by domain alone (a matched contact's company still is).
The signals are the ones capture uses (`mailsync_shared.capture_policy.rules`): the
`Auto-Submitted`, `List-Unsubscribe` and `Precedence` headers, and a no-reply or other
machine sender address.
"""

from mailsync_shared.capture_policy.rules import AUTOMATED_PRECEDENCE, is_role_address
from mailsync_shared.contracts.mail import MailMessage


def automated_reason(message: MailMessage) -> str | None:
    """Why `message` counts as bulk or automated mail, in plain words; None for a person's."""
    if message.send_request_id is not None or message.direction == "sent":
        return None
    hints = message.automation
    auto_submitted = (hints.auto_submitted or "").strip().lower()
    if auto_submitted and auto_submitted != "no":
        return f"automated mail (Auto-Submitted: {auto_submitted})"
    if hints.list_unsubscribe:
        return "bulk mail (it has a List-Unsubscribe header)"
    precedence = (hints.precedence or "").strip().lower()
    if precedence in AUTOMATED_PRECEDENCE:
        return f"bulk mail (Precedence: {precedence})"
    sender = message.from_.address if message.from_ is not None else ""
    if sender and is_role_address(sender):
        return f"automated mail (sent from the machine address {sender})"
    return None


def thread_automation(current: str | None, message: MailMessage, *, first: bool) -> str | None:
    """A thread's `automated` once `message` joins it: set by its first message, kept while
    every later one is automated too, cleared for good by a person's."""
    reason = automated_reason(message)
    if first:
        return reason
    return current if reason is not None else None
