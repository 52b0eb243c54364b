"""The other addresses a mailbox may send as.

An alias starts unverified and cannot be used as From until an admin verifies it. Proving
ownership by mailing a code to the alias is not built; an admin vouches for it instead.
"""

import logging

from mailsync_api.mailboxes import load_mailbox, refuse_taken
from mailsync_api.problems import conflict, invalid, not_found
from mailsync_api.schemas.mailbox_aliases import AliasIn
from mailsync_shared.clock import utcnow
from mailsync_shared.storage.documents import MailboxAlias, MailboxDocument
from mailsync_shared.storage.scoped import WorkspaceStore

MAX_ALIASES = 50

logger = logging.getLogger(__name__)


async def _save(store: WorkspaceStore, mailbox: MailboxDocument) -> MailboxDocument:
    document = await store.mailboxes.find_one_and_update(
        {"_id": mailbox.id},
        {"$set": {"aliases": [alias.model_dump() for alias in mailbox.aliases]}},
    )
    if document is None:
        raise not_found("mailbox")
    return MailboxDocument.from_document(document)


def _index(mailbox: MailboxDocument, address: str) -> int:
    wanted = address.strip().lower()
    for index, alias in enumerate(mailbox.aliases):
        if alias.address.lower() == wanted:
            return index
    raise not_found("alias")


async def add_alias(store: WorkspaceStore, mailbox_id: str, body: AliasIn) -> MailboxDocument:
    mailbox = await load_mailbox(store, mailbox_id)
    if body.address == mailbox.address.lower():
        raise invalid("body.address", "is the mailbox's own address")
    if any(alias.address.lower() == body.address for alias in mailbox.aliases):
        raise conflict(f"{body.address} is already an alias of this mailbox")
    if len(mailbox.aliases) >= MAX_ALIASES:
        raise conflict(f"a mailbox has at most {MAX_ALIASES} aliases")
    await refuse_taken(store, body.address, mailbox_id)
    mailbox.aliases.append(MailboxAlias(address=body.address, name=body.name))
    return await _save(store, mailbox)


async def verify_alias(
    store: WorkspaceStore, mailbox_id: str, address: str, by: str
) -> MailboxDocument:
    mailbox = await load_mailbox(store, mailbox_id)
    alias = mailbox.aliases[_index(mailbox, address)]
    if not alias.verified:
        await refuse_taken(store, alias.address, mailbox_id)
        alias.verified = True
        alias.verified_at = utcnow()
        alias.verified_by = by
        logger.info(
            "mailbox alias verified",
            extra={"workspace_id": store.workspace_id, "mailbox_id": mailbox_id, "by": by},
        )
    return await _save(store, mailbox)


async def remove_alias(store: WorkspaceStore, mailbox_id: str, address: str) -> MailboxDocument:
    mailbox = await load_mailbox(store, mailbox_id)
    del mailbox.aliases[_index(mailbox, address)]
    return await _save(store, mailbox)
