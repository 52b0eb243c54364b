"""Aliases: other addresses a mailbox sends as, usable as From once verified."""

from typing import Annotated

from fastapi import APIRouter, Path, status

from mailsync_api import mailbox_aliases
from mailsync_api.dependencies import PrincipalDep, WorkspaceDep
from mailsync_api.mailboxes import load_mailbox
from mailsync_api.problems import ProblemError, problem_responses
from mailsync_api.routes.mailboxes import mailbox_out
from mailsync_api.schemas.common import EmailAddress, RecordId
from mailsync_api.schemas.mailbox_aliases import AliasIn
from mailsync_api.schemas.mailboxes import MailboxOut

router = APIRouter(
    prefix="/v1/mailboxes/{mailbox_id}/aliases",
    tags=["mailboxes"],
    responses=problem_responses(401, 403, 404, 422),
)

MailboxId = Annotated[RecordId, Path(description="Id of the mailbox.")]
AliasAddress = Annotated[EmailAddress, Path(description="The alias's address.")]


async def _may_manage(
    store: WorkspaceDep, principal: PrincipalDep, mailbox_id: str, *, admin_too: bool
) -> None:
    """Only the owner adds an address to send as; the owner or an admin may remove one."""
    mailbox = await load_mailbox(store, mailbox_id)
    if not principal.owns(mailbox) and not (admin_too and principal.is_admin):
        who = "the mailbox's owner or an admin" if admin_too else "the mailbox's owner"
        raise ProblemError(403, f"only {who} may do this", kind="not-mailbox-owner")


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(409))
async def add_alias(
    mailbox_id: MailboxId, body: AliasIn, store: WorkspaceDep, principal: PrincipalDep
) -> MailboxOut:
    """Add an address the mailbox may send as; it is unverified until an admin verifies it."""
    await _may_manage(store, principal, mailbox_id, admin_too=False)
    added = await mailbox_aliases.add_alias(store, mailbox_id, body)
    return await mailbox_out(store, added, principal.viewer)


@router.post("/{address}/verify", responses=problem_responses(409))
async def verify_alias(
    mailbox_id: MailboxId, address: AliasAddress, store: WorkspaceDep, principal: PrincipalDep
) -> MailboxOut:
    """Vouch, as an admin, that the mailbox's user owns the alias; it may then be From. Who
    verified it and when is recorded."""
    verified = await mailbox_aliases.verify_alias(store, mailbox_id, address, principal.requester)
    return await mailbox_out(store, verified, principal.viewer)


@router.delete("/{address}")
async def remove_alias(
    mailbox_id: MailboxId, address: AliasAddress, store: WorkspaceDep, principal: PrincipalDep
) -> MailboxOut:
    """Stop sending as the alias; requests from it that have not gone out yet will fail."""
    await _may_manage(store, principal, mailbox_id, admin_too=True)
    removed = await mailbox_aliases.remove_alias(store, mailbox_id, address)
    return await mailbox_out(store, removed, principal.viewer)
