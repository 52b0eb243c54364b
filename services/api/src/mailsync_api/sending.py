"""Send requests: stored once per idempotency key, then handed to the send service."""

import logging
from datetime import timedelta
from email.utils import make_msgid

from pymongo.errors import DuplicateKeyError

from mailsync_api.mailboxes import ACTIVE, load_mailbox
from mailsync_api.problems import conflict, invalid
from mailsync_api.replies import reply_headers
from mailsync_api.schemas.send_requests import ComposeIn, ReplyIn
from mailsync_api.stored import as_stored
from mailsync_api.threads import thread_messages
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.mail import Address
from mailsync_shared.contracts.outbound import SendRequest, SendRequested
from mailsync_shared.ids import new_id
from mailsync_shared.mail.headers import single_line
from mailsync_shared.messaging import EventPublisher
from mailsync_shared.storage.documents import (
    MailboxDocument,
    MessageDocument,
    SendRequestDocument,
    ThreadDocument,
)
from mailsync_shared.storage.scoped import WorkspaceStore

SOURCE = "/mailsync/api"
UNCONFIRMED_AFTER = timedelta(seconds=30)

logger = logging.getLogger(__name__)


def sender(mailbox: MailboxDocument) -> Address:
    return Address(address=mailbox.address, name=single_line(mailbox.display_name))


def new_message_id(mailbox: MailboxDocument) -> str:
    return make_msgid(domain=mailbox.address.rsplit("@", 1)[1])


async def chosen_mailbox(store: WorkspaceStore, mailbox_id: str) -> MailboxDocument:
    """The mailbox the caller named; it must be connected."""
    if await store.mailboxes.find_one({"_id": mailbox_id}, projection={"_id": 1}) is None:
        raise invalid("body.mailbox_id", f"no mailbox with id {mailbox_id}")
    mailbox = await load_mailbox(store, mailbox_id)
    if mailbox.status.state == "disconnected":
        raise conflict(f"mailbox {mailbox_id} is disconnected")
    return mailbox


async def thread_mailbox(
    store: WorkspaceStore, thread: ThreadDocument, last: MessageDocument
) -> MailboxDocument:
    """The connected mailbox that saw the last message, else any of the thread's."""
    candidates = list(dict.fromkeys([*last.mailbox_ids, *thread.mailbox_ids]))
    documents = await store.mailboxes.find({"_id": {"$in": candidates}, **ACTIVE})
    by_id = {document["_id"]: document for document in documents}
    for candidate in candidates:
        if candidate in by_id:
            return MailboxDocument.from_document(by_id[candidate])
    raise conflict("no connected mailbox took part in this thread; name one with `mailbox_id`")


async def reply_request(
    store: WorkspaceStore, thread: ThreadDocument, body: ReplyIn
) -> SendRequestDocument:
    """A reply to the thread's last message, from the thread's mailbox or the one named."""
    messages = await thread_messages(store, thread.id)
    if not messages:
        raise conflict("the thread has no messages to reply to")
    last = messages[-1]
    if body.mailbox_id is not None:
        mailbox = await chosen_mailbox(store, body.mailbox_id)
    else:
        mailbox = await thread_mailbox(store, thread, last)
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


async def compose_request(store: WorkspaceStore, body: ComposeIn) -> SendRequestDocument:
    """A new message, starting a new thread."""
    mailbox = await chosen_mailbox(store, body.mailbox_id)

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


async def submit(
    store: WorkspaceStore, publisher: EventPublisher, request: SendRequestDocument
) -> tuple[SendRequestDocument, bool]:
    """Store the request and publish `SendRequested`; returns the request and whether it is new.

    A second request with the same idempotency key gets the first one back. It is published
    again only if the first attempt never got the broker's confirm (and is not merely still
    waiting for it).
    """
    request = as_stored(request)
    try:
        await store.send_requests.insert_one(request.to_document())
    except DuplicateKeyError:
        earlier = await replay(store, publisher, request.idempotency_key)
        if earlier is None:
            raise
        return earlier, False
    return await _publish(store, publisher, request), True


async def replay(
    store: WorkspaceStore, publisher: EventPublisher, idempotency_key: str
) -> SendRequestDocument | None:
    """The request stored earlier under `idempotency_key`, if any."""
    existing = await store.send_requests.find_one({"idempotency_key": idempotency_key})
    if existing is None:
        return None
    stored = SendRequestDocument.from_document(existing)
    if stored.published_at is None and utcnow() - stored.created_at > UNCONFIRMED_AFTER:
        stored = await _publish(store, publisher, stored)
    return stored


async def _publish(
    store: WorkspaceStore, publisher: EventPublisher, request: SendRequestDocument
) -> SendRequestDocument:
    event = SendRequested.create(
        source=SOURCE,
        workspace_id=store.workspace_id,
        data=SendRequest(send_request_id=request.id),
        subject=request.id,
    )
    await publisher.publish(event)
    published_at = utcnow()
    await store.send_requests.update_one(
        {"_id": request.id}, {"$set": {"published_at": published_at}}
    )
    logger.info(
        "send requested",
        extra={
            "workspace_id": store.workspace_id,
            "send_request_id": request.id,
            "mailbox_id": request.mailbox_id,
            "event_id": event.id,
        },
    )
    return request.model_copy(update={"published_at": published_at})
