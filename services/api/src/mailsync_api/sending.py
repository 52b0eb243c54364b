"""Send requests: stored once per idempotency key, then handed to the send service."""

import logging
from datetime import timedelta
from email.utils import make_msgid

from mailsync_api.principal import Principal
from mailsync_api.problems import ProblemError, conflict, invalid, not_found
from mailsync_api.replies import reply_headers
from mailsync_api.schemas.send_requests import ComposeIn, ReplyIn, SendRequestOut
from mailsync_api.stored import as_stored
from mailsync_api.threads import ThreadInView
from mailsync_api.visible_mail import mail_view, not_enough_access
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.mail import Address
from mailsync_shared.contracts.outbound import SendRequest, SendRequested
from mailsync_shared.ids import new_id
from mailsync_shared.mail.headers import single_line
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.send_outbox import Insert, as_it_stands, insert_one, send_request_id
from mailsync_shared.storage.documents import (
    MailboxDocument,
    MessageDocument,
    SendRequestDocument,
    ThreadDocument,
)
from mailsync_shared.storage.kept_mailboxes import KeptMailboxes
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.visibility import Access, access, owns

SOURCE = "/mailsync/api"
UNCONFIRMED_AFTER = timedelta(seconds=30)

logger = logging.getLogger(__name__)


def sender(mailbox: MailboxDocument) -> Address:
    return Address(address=mailbox.address, name=single_line(mailbox.display_name))


def new_message_id(mailbox: MailboxDocument) -> str:
    return make_msgid(domain=mailbox.address.rsplit("@", 1)[1])


def may_send_from(principal: Principal | None, mailbox: MailboxDocument) -> bool:
    """Mail goes out in the name of the mailbox's owner, so only they send from it; a mailbox
    connected without a person belongs to the workspace's system keys. Roles widen nothing: an
    admin sends from their own mailboxes only. None: the caller was checked already."""
    return principal is None or principal.owns(mailbox)


async def followed_mailboxes(store: WorkspaceStore, principal: Principal) -> set[str]:
    """The mailboxes whose send requests the caller may follow.

    Those they may send from, and those that share everything with them: a send request holds
    a whole message. Roles widen nothing here either.
    """
    view = await mail_view(store, principal.viewer)
    return {
        mailbox_id
        for mailbox_id, share in view.shares.items()
        if access(principal.viewer, [share]) is Access.EVERYTHING
    }


def shown(
    principal: Principal, request: SendRequestDocument, owned: set[str] | None = None
) -> SendRequestOut:
    """A request the caller may follow, as they may see it: its Bcc only for whoever made it
    or owns its mailbox (`owned`: from `owned_mailboxes`)."""
    bcc = request.requested_by == principal.requester or request.mailbox_id in (owned or set())
    return SendRequestOut.of(request, bcc=bcc)


async def owned_mailboxes(store: WorkspaceStore, principal: Principal) -> set[str]:
    view = await mail_view(store, principal.viewer)
    return {mailbox_id for mailbox_id, share in view.shares.items() if owns(view.viewer, share)}


async def followed_request(
    store: WorkspaceStore, principal: Principal, request_id: str
) -> SendRequestDocument:
    """The send request, if the caller may follow it; else a 404."""
    document = await store.send_requests.find_one({"_id": request_id})
    if document is None:
        raise not_found("send request")
    request = await as_it_stands(store, document)
    if request.mailbox_id not in await followed_mailboxes(store, principal):
        raise not_found("send request")
    return request


def not_yours() -> ProblemError:
    return ProblemError(
        403,
        "only the mailbox's owner or an admin sends from a mailbox",
        kind="forbidden",
    )


async def chosen_mailbox(
    store: WorkspaceStore,
    mailbox_id: str,
    principal: Principal | None = None,
    kept: KeptMailboxes | None = None,
) -> MailboxDocument:
    """The mailbox the caller named; it must be connected and theirs to send from. `kept`:
    where a mailbox read a moment ago is reused."""
    if kept is not None:
        mailbox = await kept.get(store, mailbox_id)
    else:
        document = await store.mailboxes.find_one({"_id": mailbox_id})
        mailbox = None if document is None else MailboxDocument.from_document(document)
    if mailbox is None:
        raise invalid("body.mailbox_id", f"no mailbox with id {mailbox_id}")
    if not may_send_from(principal, mailbox):
        raise not_yours()
    if mailbox.status.state == "disconnected":
        raise conflict(f"mailbox {mailbox_id} is disconnected")
    if not mailbox.in_service:
        raise conflict(f"mailbox {mailbox_id} awaits an admin's approval of its address")
    return mailbox


async def thread_mailbox(
    store: WorkspaceStore,
    thread: ThreadDocument,
    last: MessageDocument,
    principal: Principal | None = None,
) -> MailboxDocument:
    """The connected mailbox that saw the last message, else any of the thread's; one the
    caller may send from."""
    candidates = list(dict.fromkeys([*last.mailbox_ids, *thread.mailbox_ids]))
    connected = False
    for candidate in candidates:
        document = await store.mailboxes.find_one({"_id": candidate})
        if document is None:
            continue
        mailbox = MailboxDocument.from_document(document)
        if not mailbox.in_service:
            continue
        connected = True
        if may_send_from(principal, mailbox):
            return mailbox
    if connected:
        raise not_yours()
    raise conflict("no connected mailbox took part in this thread; name one with `mailbox_id`")


async def reply_request(
    store: WorkspaceStore,
    found: ThreadInView,
    body: ReplyIn,
    principal: Principal | None = None,
) -> SendRequestDocument:
    """A reply to the last message of the thread the caller may read whole, from the thread's
    mailbox or the one named; a message they may not read is never quoted or answered."""
    thread = found.thread
    messages = found.in_full()
    if not messages:
        raise not_enough_access(found.level)
    last = messages[-1]
    if body.mailbox_id is not None:
        mailbox = await chosen_mailbox(store, body.mailbox_id, principal)
    else:
        mailbox = await thread_mailbox(store, thread, last, principal)
    headers = reply_headers(messages, mailbox.address, reply_all=body.reply_all)
    if not headers.to:
        raise conflict("the last message has no recipient other than the mailbox owner")
    return SendRequestDocument(
        workspace_id=store.workspace_id,
        mailbox_id=mailbox.id,
        idempotency_key=body.idempotency_key or new_id(),
        from_=sender(mailbox),
        to=headers.to,
        cc=headers.cc,
        subject=headers.subject,
        body_text=body.body_text,
        body_html=body.body_html,
        in_reply_to=headers.in_reply_to,
        references=headers.references,
        message_id=new_message_id(mailbox),
        thread_id=thread.id,
    )


def compose_request(
    store: WorkspaceStore, body: ComposeIn, mailbox: MailboxDocument
) -> SendRequestDocument:
    """A new message from `mailbox`, starting a new thread."""

    def addresses(values: list[object]) -> list[Address]:
        return [Address.model_validate(value, from_attributes=True) for value in values]

    return SendRequestDocument(
        workspace_id=store.workspace_id,
        mailbox_id=mailbox.id,
        idempotency_key=body.idempotency_key or new_id(),
        from_=sender(mailbox),
        to=addresses(list(body.to)),
        cc=addresses(list(body.cc)),
        bcc=addresses(list(body.bcc)),
        subject=body.subject,
        body_text=body.body_text,
        body_html=body.body_html,
        message_id=new_message_id(mailbox),
    )


def with_id(
    store: WorkspaceStore, request: SendRequestDocument, requester: str
) -> SendRequestDocument:
    """`request` made by `requester`, under the `_id` their idempotency key gives it."""
    return request.model_copy(
        update={
            "requested_by": requester,
            "id": send_request_id(store.workspace_id, requester, request.idempotency_key),
        }
    )


async def submit(
    store: WorkspaceStore,
    publisher: EventPublisher,
    request: SendRequestDocument,
    requester: str,
    insert: Insert = insert_one,
) -> tuple[SendRequestDocument, bool]:
    """Store the request and publish `SendRequested`; returns the request and whether it is new.

    A second request by the same `requester` (`Principal.requester`) with the same idempotency
    key gets the first one back; the same key from anyone else is a key of theirs, unrelated.
    It is published again only if the first attempt never got the broker's confirm (and is not
    merely still waiting for it). `insert` may write the request together with others'
    (`InsertBatches`).
    """
    request = as_stored(with_id(store, request, requester))
    if await insert(store.send_requests, request.to_document()):
        return await _publish(store, publisher, request), True
    existing = await store.send_requests.find_one({"_id": request.id})
    if existing is None:
        raise conflict(f"a request with the idempotency key {request.idempotency_key} is stored")
    if existing.get("message_id") == request.message_id:
        # Written by this very call, on a try whose answer was lost: it is new all the same.
        return await _publish(store, publisher, request), True
    return await _confirmed(store, publisher, SendRequestDocument.from_document(existing)), False


async def replay(
    store: WorkspaceStore, publisher: EventPublisher, requester: str, idempotency_key: str
) -> SendRequestDocument | None:
    """The request `requester` stored earlier under `idempotency_key`, if any (one read, by
    `_id`); another caller's request under the same key is never found."""
    existing = await store.send_requests.find_one(
        {"_id": send_request_id(store.workspace_id, requester, idempotency_key)}
    )
    if existing is None:
        return None
    return await _confirmed(store, publisher, SendRequestDocument.from_document(existing))


async def _confirmed(
    store: WorkspaceStore, publisher: EventPublisher, stored: SendRequestDocument
) -> SendRequestDocument:
    """`stored`, published again first if it has not moved for a while after it was made.

    A request the send service has not touched `UNCONFIRMED_AFTER` after it was stored may
    have missed its `SendRequested` (the broker never confirmed it); publishing it twice is
    harmless, since only one claim of it wins.
    """
    untouched = (
        stored.state == "queued"
        and stored.attempts == 0
        and stored.next_attempt_at is None
        and utcnow() - stored.updated_at > UNCONFIRMED_AFTER
    )
    if untouched:
        return await _publish(store, publisher, stored)
    return stored


async def _publish(
    store: WorkspaceStore, publisher: EventPublisher, request: SendRequestDocument
) -> SendRequestDocument:
    """Publish `SendRequested` and wait for the broker's confirm.

    Nothing is written to the request afterwards: an update could undo the send service's claim
    of it, made at the same moment (the store rewrites whole documents).
    """
    event = SendRequested.create(
        source=SOURCE,
        workspace_id=store.workspace_id,
        data=SendRequest(send_request_id=request.id),
        subject=request.id,
    )
    await publisher.publish(event)
    logger.info(
        "send requested",
        extra={
            "workspace_id": store.workspace_id,
            "send_request_id": request.id,
            "mailbox_id": request.mailbox_id,
            "event_id": event.id,
        },
    )
    return request
