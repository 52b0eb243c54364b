"""Mailboxes: connecting a user's own mail account, its settings, progress and disconnection."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, status

from mailsync_api import mailboxes
from mailsync_api.dependencies import (
    CipherDep,
    KeptMailboxesDep,
    PrincipalDep,
    PublisherDep,
    SettingsDep,
    ViewerDep,
    WorkspaceDep,
)
from mailsync_api.ingest_wakes import wake_ingest
from mailsync_api.mail_health import mail_health
from mailsync_api.mailbox_summary import sync_summary
from mailsync_api.principal import Principal
from mailsync_api.problems import ProblemError, problem_responses
from mailsync_api.schemas.common import RecordId
from mailsync_api.schemas.mailboxes import MailboxIn, MailboxOut, MailboxPatch, SyncSummary
from mailsync_api.synced_data import SyncedDataRemoved, remove_synced_data
from mailsync_shared.storage.documents import MailboxDocument
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.visibility import Viewer

router = APIRouter(
    prefix="/v1/mailboxes", tags=["mailboxes"], responses=problem_responses(401, 403, 404, 422)
)

MailboxId = Annotated[RecordId, Path(description="Id of the mailbox.")]


async def mailbox_out(
    store: WorkspaceStore, mailbox: MailboxDocument, viewer: Viewer
) -> MailboxOut:
    """The mailbox with what its status says about its mail (defects, mail not stored), as
    much as it shares with `viewer`."""
    return MailboxOut.of(mailbox, viewer, (await mail_health(store, [mailbox.id]))[mailbox.id])


async def _owned(store: WorkspaceStore, principal: Principal, mailbox_id: str) -> None:
    """Only the mailbox's owner changes what it shares and how it syncs: no role widens mail
    access."""
    mailbox = await mailboxes.load_mailbox(store, mailbox_id)
    if not principal.owns(mailbox):
        raise ProblemError(
            403, "only the mailbox's owner may change its settings", kind="not-mailbox-owner"
        )


async def _managed(store: WorkspaceStore, principal: Principal, mailbox_id: str) -> None:
    """The owner, or an admin, may stop a mailbox (which narrows what is shared, never widens)."""
    mailbox = await mailboxes.load_mailbox(store, mailbox_id)
    if not principal.is_admin and not principal.owns(mailbox):
        raise ProblemError(
            403, "only the mailbox's owner or an admin may do this", kind="not-mailbox-owner"
        )


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(409))
async def connect_mailbox(
    body: MailboxIn,
    store: WorkspaceDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    cipher: CipherDep,
    publisher: PublisherDep,
) -> MailboxOut:
    """Connect the caller's mailbox: both logins are tried first, passwords stored encrypted."""
    mailbox = await mailboxes.connect_mailbox(
        store, body, settings, cipher, owner_user_id=principal.user_id
    )
    if mailbox.in_service:
        await wake_ingest(publisher, mailbox, "connected")
    return await mailbox_out(store, mailbox, principal.viewer)


@router.get("")
async def list_mailboxes(store: WorkspaceDep, viewer: ViewerDep) -> list[MailboxOut]:
    """Every mailbox of the workspace, connected or not."""
    documents = await store.mailboxes.find(sort=[("connected_at", -1)])
    found = [MailboxDocument.from_document(document) for document in documents]
    health = await mail_health(store, [mailbox.id for mailbox in found])
    return [MailboxOut.of(mailbox, viewer, health[mailbox.id]) for mailbox in found]


@router.get("/{mailbox_id}")
async def get_mailbox(mailbox_id: MailboxId, store: WorkspaceDep, viewer: ViewerDep) -> MailboxOut:
    """A mailbox's settings and sync status, with progress per folder where its mail is
    visible to the caller."""
    return await mailbox_out(store, await mailboxes.load_mailbox(store, mailbox_id), viewer)


@router.patch("/{mailbox_id}")
async def update_mailbox(
    mailbox_id: MailboxId,
    body: MailboxPatch,
    store: WorkspaceDep,
    principal: PrincipalDep,
    kept: KeptMailboxesDep,
) -> MailboxOut:
    """Change a mailbox's settings: display name, sync window, visibility, Sent copies; only
    its owner may."""
    await _owned(store, principal, mailbox_id)
    changes = body.model_dump(exclude_unset=True)
    updated = await mailboxes.update_settings(store, mailbox_id, changes)
    kept.forget(store.workspace_id, mailbox_id)
    return await mailbox_out(store, updated, principal.viewer)


@router.post(
    "/{mailbox_id}/resync",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(409),
)
async def resync_mailbox(
    mailbox_id: MailboxId,
    store: WorkspaceDep,
    principal: PrincipalDep,
    kept: KeptMailboxesDep,
    publisher: PublisherDep,
) -> MailboxOut:
    """Sync the mailbox again from the start of its window; nothing is logged twice."""
    await _managed(store, principal, mailbox_id)
    resynced = await mailboxes.request_resync(store, mailbox_id)
    kept.forget(store.workspace_id, mailbox_id)
    await wake_ingest(publisher, resynced, "resync")
    return await mailbox_out(store, resynced, principal.viewer)


@router.post(
    "/{mailbox_id}/reconcile",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(409),
)
async def reconcile_mailbox(
    mailbox_id: MailboxId, store: WorkspaceDep, principal: PrincipalDep
) -> MailboxOut:
    """Compare the server's mail with what was logged at the worker's next round (seconds):
    `status.gaps` and `status.reconciled_at` show the outcome."""
    await _managed(store, principal, mailbox_id)
    reconciling = await mailboxes.request_reconcile(store, mailbox_id)
    return await mailbox_out(store, reconciling, principal.viewer)


@router.post("/{mailbox_id}/approve-address", responses=problem_responses(409))
async def approve_address(
    mailbox_id: MailboxId,
    store: WorkspaceDep,
    principal: PrincipalDep,
    kept: KeptMailboxesDep,
    publisher: PublisherDep,
) -> MailboxOut:
    """Vouch, as an admin, that the mailbox's owner holds its address (which is not its login's
    own); the approval is recorded with who gave it and when, and the mailbox starts syncing."""
    approved = await mailboxes.approve_address(store, mailbox_id, principal.requester)
    kept.forget(store.workspace_id, mailbox_id)
    if approved.in_service:
        await wake_ingest(publisher, approved, "approved")
    return await mailbox_out(store, approved, principal.viewer)


@router.get("/{mailbox_id}/sync-summary")
async def get_sync_summary(mailbox_id: MailboxId, store: WorkspaceDep) -> SyncSummary:
    """What gets synced, which direction it flows and who can see it, in plain words."""
    return sync_summary(await mailboxes.load_mailbox(store, mailbox_id))


@router.post("/{mailbox_id}/disconnect")
async def disconnect_mailbox(
    mailbox_id: MailboxId, store: WorkspaceDep, principal: PrincipalDep, kept: KeptMailboxesDep
) -> MailboxOut:
    """Stop syncing and erase the credentials; mail already logged stays on the records."""
    await _managed(store, principal, mailbox_id)
    disconnected = await mailboxes.disconnect(store, mailbox_id)
    kept.forget(store.workspace_id, mailbox_id)
    return await mailbox_out(store, disconnected, principal.viewer)


@router.delete("/{mailbox_id}/synced-data", responses=problem_responses(409))
async def delete_synced_data(
    mailbox_id: MailboxId,
    store: WorkspaceDep,
    confirm: Annotated[
        str,
        Query(
            min_length=1,
            max_length=320,
            description="The mailbox's address, to confirm; nothing is deleted without it.",
        ),
    ],
) -> SyncedDataRemoved:
    """Erase the mail synced from a disconnected mailbox and report what was removed."""
    return await remove_synced_data(store, mailbox_id, confirm)
