"""What compose, reply and forward share (From, HTML, attachments, send time), forwards, and
cancelling a request before it is sent."""

import re
from datetime import UTC, datetime, timedelta

from mailsync_api.attachment_uploads import attachment_refs, too_large
from mailsync_api.mailboxes import load_mailbox
from mailsync_api.principal import Principal
from mailsync_api.problems import ProblemError, conflict, invalid, not_found
from mailsync_api.schemas.common import AddressIn
from mailsync_api.schemas.forwards import ForwardIn
from mailsync_api.schemas.outbound import SendOptions
from mailsync_api.sending import chosen_mailbox, new_message_id, sender, thread_mailbox
from mailsync_api.threads import ThreadInView
from mailsync_api.visible_mail import not_enough_access
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.mail import Address
from mailsync_shared.ids import new_id
from mailsync_shared.mail.headers import single_line
from mailsync_shared.mail.html import sanitize_html
from mailsync_shared.send_outbox import as_it_stands, cancel
from mailsync_shared.storage.attachments import (
    MAX_ATTACHMENTS_BYTES,
    AttachmentTooLargeError,
    check_total_size,
)
from mailsync_shared.storage.documents import (
    AttachmentRef,
    ForwardOf,
    MailboxDocument,
    SendRequestDocument,
)
from mailsync_shared.storage.raw_messages import load_raw
from mailsync_shared.storage.scoped import WorkspaceStore

MAX_SCHEDULE_AHEAD = timedelta(days=366)
_FORWARD_PREFIX = re.compile(r"^\s*(fwd?|fw)\s*:", re.IGNORECASE)


def addresses(values: list[AddressIn]) -> list[Address]:
    return [Address.model_validate(value, from_attributes=True) for value in values]


def from_address(mailbox: MailboxDocument, wanted: str | None) -> Address:
    """The mailbox's own address, or a verified alias of it; anything else is a 422."""
    if wanted is None or wanted == mailbox.address.lower():
        return sender(mailbox)
    if not mailbox.can_send_as(wanted):
        raise invalid(
            "body.from_address", "is neither the mailbox's address nor one of its verified aliases"
        )
    alias = next(a for a in mailbox.aliases if a.address.strip().lower() == wanted)
    return Address(address=wanted, name=single_line(alias.name or mailbox.display_name))


def _distinct_recipients(
    to: list[Address], cc: list[Address], bcc: list[Address]
) -> tuple[list[Address], list[Address], list[Address]]:
    """Each address once, in the most visible field it was given in."""
    seen: set[str] = set()
    lists: list[list[Address]] = []
    for group in (to, cc, bcc):
        kept = []
        for address in group:
            key = address.address.lower()
            if key not in seen:
                seen.add(key)
                kept.append(address)
        lists.append(kept)
    return lists[0], lists[1], lists[2]


def scheduled_time(options: SendOptions) -> datetime | None:
    """`send_at` in UTC; checked here, not in the schema, so a replay of an earlier request
    whose time has since passed still gets that request back."""
    if options.send_at is None:
        return None
    now = utcnow()
    if options.send_at <= now:
        raise invalid("body.send_at", "must be in the future")
    if options.send_at > now + MAX_SCHEDULE_AHEAD:
        raise invalid("body.send_at", "must be within a year from now")
    return options.send_at.astimezone(UTC)


async def with_options(
    store: WorkspaceStore,
    options: SendOptions,
    request: SendRequestDocument,
    *,
    mailbox: MailboxDocument | None = None,
    extra_cc: list[AddressIn] | None = None,
    extra_bcc: list[AddressIn] | None = None,
    forwarded_size: int = 0,
    attachments_limit: int = MAX_ATTACHMENTS_BYTES,
) -> SendRequestDocument:
    """`request` with the caller's From, sanitized HTML, attachments and send time applied."""
    send_at = scheduled_time(options)
    if mailbox is None:
        mailbox = await load_mailbox(store, request.mailbox_id)
    refs = await attachment_refs(store, options.attachments)
    counted = list(refs)
    if forwarded_size:
        counted.append(
            AttachmentRef(
                attachment_id="forwarded", filename="forwarded message", size=forwarded_size
            )
        )
    try:
        check_total_size(counted, attachments_limit)
    except AttachmentTooLargeError as error:
        raise too_large(str(error)) from error
    to, cc, bcc = _distinct_recipients(
        list(request.to),
        [*request.cc, *addresses(extra_cc or [])],
        [*request.bcc, *addresses(extra_bcc or [])],
    )
    return request.model_copy(
        update={
            "from_": from_address(mailbox, options.from_address),
            "to": to,
            "cc": cc,
            "bcc": bcc,
            "body_html": None if request.body_html is None else sanitize_html(request.body_html),
            "attachments": refs,
            "send_at": send_at,
            "next_attempt_at": send_at,
        }
    )


def forward_subject(subject: str) -> str:
    """`Fwd: <subject>`, without stacking a second prefix."""
    clean = single_line(subject)
    if _FORWARD_PREFIX.match(clean):
        return clean
    return f"Fwd: {clean}" if clean else "Fwd:"


async def _raw_size(store: WorkspaceStore, raw_id: str) -> int | None:
    document = await store.raw_messages.find_one({"_id": raw_id}, projection={"size": 1})
    if document is None:
        return None
    size = document.get("size")
    if isinstance(size, int):
        return size
    data = await load_raw(store, raw_id)
    return None if data is None else len(data)


async def forward_request(
    store: WorkspaceStore,
    found: ThreadInView,
    body: ForwardIn,
    *,
    principal: Principal | None = None,
    attachments_limit: int = MAX_ATTACHMENTS_BYTES,
) -> SendRequestDocument:
    """A forward of one of the thread's messages the caller may read whole (the last of those
    by default), attached whole; a message they may not read is as if it were not there."""
    thread = found.thread
    messages = found.in_full()
    if not messages:
        raise not_enough_access(found.level)
    if body.message_id is None:
        original = messages[-1]
    else:
        wanted = body.message_id.strip()
        matches = [message for message in messages if message.message_id == wanted]
        if not matches:
            raise invalid("body.message_id", "is not the Message-ID of a message in this thread")
        original = matches[-1]
    if body.mailbox_id is not None:
        mailbox = await chosen_mailbox(store, body.mailbox_id, principal)
    else:
        mailbox = await thread_mailbox(store, thread, original, principal)
    size = await _raw_size(store, original.raw_id)
    if size is None:
        raise conflict("the message's original bytes are not stored, so it cannot be forwarded")
    request = SendRequestDocument(
        workspace_id=store.workspace_id,
        mailbox_id=mailbox.id,
        idempotency_key=body.idempotency_key or new_id(),
        from_=sender(mailbox),
        to=addresses(body.to),
        cc=addresses(body.cc),
        bcc=addresses(body.bcc),
        subject=body.subject if body.subject is not None else forward_subject(original.subject),
        body_text=body.body_text,
        body_html=body.body_html,
        message_id=new_message_id(mailbox),
        thread_id=thread.id,
        forward_of=ForwardOf(raw_id=original.raw_id, message_id=single_line(original.message_id)),
    )
    return await with_options(
        store,
        body,
        request,
        mailbox=mailbox,
        forwarded_size=size,
        attachments_limit=attachments_limit,
    )


async def cancel_request(store: WorkspaceStore, request_id: str) -> SendRequestDocument:
    """Cancel a request that has not started sending; 409 with its state when it has."""
    document = await store.send_requests.find_one({"_id": request_id})
    if document is None:
        raise not_found("send request")
    current = SendRequestDocument.from_document(document)
    if current.state != "cancelled":
        cancelled = await cancel(store, request_id)
        if cancelled is not None:
            return cancelled
        latest = await store.send_requests.find_one({"_id": request_id})
        current = await as_it_stands(store, latest or document)
    if current.state == "cancelled":
        return current
    raise ProblemError(
        409,
        f"the send request is {current.state}; only a queued request can be cancelled",
        kind="not-cancellable",
        title="Not cancellable",
        state=current.state,
    )
