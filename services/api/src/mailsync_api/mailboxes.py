"""Connecting, changing and disconnecting a user's mailbox."""

import asyncio
import logging
from typing import Any

from mailsync_api.mail_servers import ServerKind, check_login
from mailsync_api.oauth_servers import check_xoauth2_server, oauth_account
from mailsync_api.problems import conflict, invalid, not_found
from mailsync_api.schemas.mailboxes import MailboxIn, ServerIn
from mailsync_api.settings import Settings
from mailsync_api.stored import as_stored
from mailsync_shared.clock import utcnow
from mailsync_shared.crypto import CredentialCipher
from mailsync_shared.mail_servers.accounts import Login
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.storage.documents import (
    OUT_OF_SERVICE,
    SECRET_FIELDS,
    AddressProof,
    MailboxDocument,
    MailboxStatus,
    ServerAccount,
    SyncPolicy,
)
from mailsync_shared.storage.mailbox_changes import count_change
from mailsync_shared.storage.scoped import WorkspaceStore

logger = logging.getLogger(__name__)

IN_SERVICE = {"status.state": {"$nin": list(OUT_OF_SERVICE)}}
AWAITING_APPROVAL = "the address is not the login's own; an admin must approve it"


async def load_mailbox(store: WorkspaceStore, mailbox_id: str) -> MailboxDocument:
    document = await store.mailboxes.find_one({"_id": mailbox_id})
    if document is None:
        raise not_found("mailbox")
    return MailboxDocument.from_document(document)


def _password(server: ServerIn) -> str:
    return server.password.get_secret_value() if server.password else ""


async def _check_server(kind: ServerKind, server: ServerIn, settings: Settings) -> None:
    if server.auth == "xoauth2":
        await check_xoauth2_server(kind, server, settings)
        return
    await check_login(
        kind,
        server.host,
        server.port,
        server.security,
        Login(server.username, password=_password(server)),
        guard=HostGuard(allow_private=settings.allow_private_hosts),
        timeout=settings.mail_server_timeout,
    )


def _account(server: ServerIn, cipher: CredentialCipher) -> ServerAccount:
    if server.auth == "xoauth2":
        return oauth_account(server, cipher)
    return ServerAccount(
        host=server.host,
        port=server.port,
        security=server.security,
        username=server.username,
        secret_encrypted=cipher.encrypt(_password(server)),
    )


def proven_by_login(body: MailboxIn) -> bool:
    """The address is the login's own on both servers: whoever holds the login holds the
    address. (An XOAUTH2 login names its account the same way.)"""
    return all(server.username.strip().lower() == body.address for server in (body.imap, body.smtp))


async def refuse_taken(store: WorkspaceStore, address: str, mailbox_id: str | None = None) -> None:
    """Refuse an address that a mailbox in service already uses, as its own or as a verified
    alias; the answer does not say whose it is."""
    wanted = address.strip().lower()
    candidates = await store.mailboxes.find(
        {
            "$or": [{"address": wanted}, {"aliases.address": wanted}],
            "_id": {"$ne": mailbox_id},
            **IN_SERVICE,
        }
    )
    mailboxes = [MailboxDocument.from_document(document) for document in candidates]
    if any(mailbox.can_send_as(wanted) for mailbox in mailboxes):
        raise conflict(f"{wanted} is already connected in this workspace")


async def connect_mailbox(
    store: WorkspaceStore,
    body: MailboxIn,
    settings: Settings,
    cipher: CredentialCipher,
    owner_user_id: str | None = None,
) -> MailboxDocument:
    """Check both servers accept the login, then store the mailbox for ingest to pick up.

    An address that is not the login's own waits for an admin's approval, unsynced and unable
    to send: a login proves only its own address.
    """
    await refuse_taken(store, body.address)
    outcomes = await asyncio.gather(
        _check_server("imap", body.imap, settings),
        _check_server("smtp", body.smtp, settings),
        return_exceptions=True,
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    mailbox = as_stored(
        MailboxDocument(
            workspace_id=store.workspace_id,
            address=body.address,
            display_name=body.display_name,
            owner_user_id=owner_user_id,
            imap=_account(body.imap, cipher),
            smtp=_account(body.smtp, cipher),
            sync=SyncPolicy(scope=body.sync.scope, backfill_days=body.sync.backfill_days),
            visibility=body.visibility,
            append_to_sent=body.append_to_sent,
            send_rate_per_minute=body.send_rate_per_minute,
        )
    )
    if proven_by_login(body):
        mailbox.address_proof = AddressProof(method="login")
    else:
        mailbox.status = MailboxStatus(state="awaiting_approval", reason=AWAITING_APPROVAL)
    await store.mailboxes.insert_one(mailbox.to_document())
    await count_change(store, "directory")
    logger.info(
        "mailbox connected",
        extra={
            "workspace_id": store.workspace_id,
            "mailbox_id": mailbox.id,
            "state": mailbox.status.state,
        },
    )
    return mailbox


async def approve_address(store: WorkspaceStore, mailbox_id: str, by: str) -> MailboxDocument:
    """An admin vouches that the mailbox's owner holds its address; it then syncs and sends."""
    mailbox = await load_mailbox(store, mailbox_id)
    if mailbox.status.state != "awaiting_approval":
        if mailbox.status.state == "disconnected":
            raise conflict(f"mailbox {mailbox_id} is disconnected")
        return mailbox
    await refuse_taken(store, mailbox.address, mailbox_id)
    proof = AddressProof(method="admin", by=by)
    document = await store.mailboxes.find_one_and_update(
        {"_id": mailbox_id, "status.state": "awaiting_approval"},
        {
            "$set": {
                "address_proof": proof.model_dump(),
                "status": MailboxStatus(state="connecting").model_dump(),
            }
        },
    )
    if document is None:
        raise conflict(f"mailbox {mailbox_id} changed meanwhile; try again")
    await count_change(store, "controls")
    logger.info(
        "mailbox address approved",
        extra={"workspace_id": store.workspace_id, "mailbox_id": mailbox_id, "by": by},
    )
    return MailboxDocument.from_document(document)


async def update_settings(
    store: WorkspaceStore, mailbox_id: str, changes: dict[str, Any]
) -> MailboxDocument:
    for field in ("display_name", "visibility", "append_to_sent", "sync"):
        if field in changes and changes[field] is None:
            raise invalid(f"body.{field}", "cannot be null")
    if not changes:
        return await load_mailbox(store, mailbox_id)
    document = await store.mailboxes.find_one_and_update({"_id": mailbox_id}, {"$set": changes})
    if document is None:
        raise not_found("mailbox")
    if "sync" in changes or any(field.startswith("sync.") for field in changes):
        await count_change(store, "directory")
    return MailboxDocument.from_document(document)


async def request_resync(store: WorkspaceStore, mailbox_id: str) -> MailboxDocument:
    """Forget the folder checkpoints and release the lease, so a worker syncs it afresh.

    Messages already logged are recognised by `Message-ID` and not logged twice.
    """
    document = await store.mailboxes.find_one_and_update(
        {"_id": mailbox_id, **IN_SERVICE},
        {
            "$set": {
                "folders": {},
                "lease": None,
                "status.state": "connecting",
                "status.reason": "resync requested",
                "status.updated_at": utcnow(),
            }
        },
    )
    if document is None:
        mailbox = await load_mailbox(store, mailbox_id)
        if mailbox.status.state == "awaiting_approval":
            raise conflict(f"mailbox {mailbox.id} awaits an admin's approval of its address")
        raise conflict(f"mailbox {mailbox.id} is disconnected; connect it again to sync it")
    await count_change(store, "controls")
    logger.info(
        "mailbox resync requested",
        extra={"workspace_id": store.workspace_id, "mailbox_id": mailbox_id},
    )
    return MailboxDocument.from_document(document)


async def request_reconcile(store: WorkspaceStore, mailbox_id: str) -> MailboxDocument:
    """Ask the mailbox's worker to compare the server's mail with the log at its next round."""
    document = await store.mailboxes.find_one_and_update(
        {"_id": mailbox_id, **IN_SERVICE}, {"$set": {"reconcile_requested_at": utcnow()}}
    )
    if document is None:
        mailbox = await load_mailbox(store, mailbox_id)
        if mailbox.status.state == "awaiting_approval":
            raise conflict(f"mailbox {mailbox.id} awaits an admin's approval of its address")
        raise conflict(f"mailbox {mailbox.id} is disconnected; connect it again to sync it")
    await count_change(store, "controls")
    return MailboxDocument.from_document(document)


async def disconnect(store: WorkspaceStore, mailbox_id: str) -> MailboxDocument:
    """Stop syncing and sending: erase the credentials and the lease, keep the logged mail.

    Nothing on the mail server is touched.
    """
    now = utcnow()
    document = await store.mailboxes.find_one_and_update(
        {"_id": mailbox_id},
        {
            "$set": {
                **{
                    f"{server}.{field}": None
                    for server in ("imap", "smtp")
                    for field in SECRET_FIELDS
                },
                "lease": None,
                "status.state": "disconnected",
                "status.reason": "disconnected through the api",
                "status.updated_at": now,
                "disconnected_at": now,
            }
        },
    )
    if document is None:
        raise not_found("mailbox")
    await count_change(store, "controls")
    logger.info(
        "mailbox disconnected",
        extra={"workspace_id": store.workspace_id, "mailbox_id": mailbox_id},
    )
    return MailboxDocument.from_document(document)
