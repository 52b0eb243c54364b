"""A message sent through Mailsync, whole again: `email.sent` is public, so it carries only
what the sending mailbox's visibility publishes (never Bcc, the subject only for `workspace`
mail); the rest is read back from the stored send request."""

from datetime import UTC

from pymongo.asynchronous.database import AsyncDatabase

from mailsync_shared.contracts.mail import Address, MailMessage
from mailsync_shared.mail.headers import single_line
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import SendRequestDocument
from mailsync_shared.storage.scoped import WorkspaceStore


def _address(address: Address) -> Address:
    return Address(address=address.address.strip().lower(), name=single_line(address.name))


def completed(message: MailMessage, request: SendRequestDocument) -> MailMessage:
    """`message` with the fields the public event left blank filled from its request, as
    the send service composed them."""
    update: dict[str, object] = {"bcc": [_address(a) for a in request.bcc]}
    if not message.subject:
        update["subject"] = single_line(request.subject).replace("=?", "= ?")
    if not message.message_id:
        update["message_id"] = request.message_id.strip()
        update["in_reply_to"] = list(request.in_reply_to)
        update["references"] = list(request.references)
    if message.date is None:
        created = request.created_at
        update["date"] = created if created.tzinfo else created.replace(tzinfo=UTC)
    if message.from_ is None:
        update["from_"] = _address(request.from_)
    if not message.to and not message.cc:
        update["to"] = [_address(a) for a in request.to]
        update["cc"] = [_address(a) for a in request.cc]
    return message.model_copy(update=update)


async def sent_message(store: WorkspaceStore, message: MailMessage, request_id: str) -> MailMessage:
    """The sent message whole, when its send request is still stored; as published otherwise."""
    document = await store.send_requests.find_one({"_id": request_id})
    if document is None:
        return message
    return completed(message, SendRequestDocument.from_document(document))


class SentRequests:
    """Sent messages completed from the send requests of a database's workspaces."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._db = db

    async def complete(
        self, workspace_id: str, message: MailMessage, request_id: str
    ) -> MailMessage:
        return await sent_message(WorkspaceStore(self._db, workspace_id), message, request_id)
