"""Threads a person links by hand, suggestions for unassigned ones, privacy and skipped mail."""

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Path

from mailsync_api.dependencies import PrincipalDep, PublisherDep, WorkspaceDep
from mailsync_api.mailboxes import load_mailbox
from mailsync_api.principal import Principal
from mailsync_api.problems import ProblemError, not_found, problem_responses
from mailsync_api.schemas.associations import (
    SkippedMailOut,
    SuggestionOut,
    SuggestionsOut,
    ThreadLinksIn,
    ThreadLinksOut,
    ThreadPrivacyOut,
)
from mailsync_api.schemas.common import RecordId
from mailsync_api.threads import thread_in_view, threads_as_seen, visible_thread
from mailsync_api.users import USERS
from mailsync_shared.association.manual import (
    UnknownRecordsError,
    associate_manually,
    suggestions,
)
from mailsync_shared.association.scope import skipped_unmatched
from mailsync_shared.storage.documents import ThreadDocument
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.visibility import Access, MailboxShare, access, mailbox_shares, owns

router = APIRouter(prefix="/v1", tags=["threads"], responses=problem_responses(401, 403, 404, 422))

ThreadId = Annotated[RecordId, Path(description="Id of the thread.")]
MailboxId = Annotated[RecordId, Path(description="Id of the mailbox.")]


async def actor_name(store: WorkspaceStore, principal: Principal) -> str:
    """Who acts, as recorded with what they change: a person's email, or the API key."""
    if principal.user_id is None:
        return f"api key {principal.key_id}"
    user = await store.collection(USERS).find_one(
        {"_id": principal.user_id}, projection={"email": 1, "name": 1}
    )
    if user is None:
        return f"user {principal.user_id}"
    return str(user.get("email") or user.get("name") or f"user {principal.user_id}")


def _unknown_records(error: UnknownRecordsError) -> ProblemError:
    params = [
        {"name": f"body.{field}", "reason": f"no such record: {', '.join(ids)}"}
        for field, ids in error.missing.items()
    ]
    return ProblemError(
        422,
        "; ".join(f"{p['name']}: {p['reason']}" for p in params),
        kind="unknown-records",
        title="Unknown records",
        invalid_params=params,
        unknown_ids=error.missing,
    )


@router.get("/threads/{thread_id}/suggestions")
async def suggest_links(
    thread_id: ThreadId, store: WorkspaceDep, principal: PrincipalDep
) -> SuggestionsOut:
    """Contacts, companies and deals this thread might be about, strongest first, with why."""
    found_thread = await thread_in_view(store, principal.viewer, thread_id)
    thread = found_thread.thread

    async def seen(threads: Sequence[ThreadDocument]) -> dict[str, ThreadDocument]:
        return await threads_as_seen(store, found_thread.view, threads)

    found = await suggestions(
        store,
        found_thread.as_seen(),
        seen=seen,
        message_ids=found_thread.visible_message_ids(),
    )
    return SuggestionsOut(
        thread_id=thread.id,
        assigned=bool(thread.contact_ids or thread.company_ids or thread.deal_ids),
        suggestions=[SuggestionOut.of(s) for s in found],
    )


@router.put("/threads/{thread_id}/links")
async def set_links(
    thread_id: ThreadId,
    body: ThreadLinksIn,
    store: WorkspaceDep,
    principal: PrincipalDep,
    publisher: PublisherDep,
) -> ThreadLinksOut:
    """Link the thread to exactly these records; later mail and rule changes keep the links."""
    await visible_thread(store, principal.viewer, thread_id)
    try:
        thread = await associate_manually(
            store,
            thread_id,
            body.contact_ids,
            body.company_ids,
            body.deal_ids,
            actor=await actor_name(store, principal),
            publish=publisher.publish,
        )
    except UnknownRecordsError as error:
        raise _unknown_records(error) from error
    except LookupError as error:
        raise not_found("thread") from error
    return ThreadLinksOut.of(thread)


async def _set_private(
    store: WorkspaceStore, principal: Principal, thread_id: str, private: bool
) -> ThreadPrivacyOut:
    thread = await visible_thread(store, principal.viewer, thread_id)
    shares = await mailbox_shares(store, thread.mailbox_ids)
    if not any(owns(principal.viewer, share) for share in shares):
        raise ProblemError(
            403,
            "only the owner of a mailbox the thread was seen in may change its privacy",
            kind="not-mailbox-owner",
        )
    await store.threads.update_one({"_id": thread.id}, {"$set": {"private": private}})
    return ThreadPrivacyOut(thread_id=thread.id, private=private)


@router.post("/threads/{thread_id}/private")
async def make_private(
    thread_id: ThreadId, store: WorkspaceDep, principal: PrincipalDep
) -> ThreadPrivacyOut:
    """Hide the thread from everyone but the owners of the mailboxes it was seen in."""
    return await _set_private(store, principal, thread_id, True)


@router.delete("/threads/{thread_id}/private")
async def make_public(
    thread_id: ThreadId, store: WorkspaceDep, principal: PrincipalDep
) -> ThreadPrivacyOut:
    """Share the thread again as its mailboxes' visibility says."""
    return await _set_private(store, principal, thread_id, False)


@router.get("/mailboxes/{mailbox_id}/skipped")
async def skipped_mail(
    mailbox_id: MailboxId, store: WorkspaceDep, principal: PrincipalDep
) -> SkippedMailOut:
    """How many messages of a client-only mailbox matched no record and were not logged; a
    count of its mail, so only for those it shares at least metadata with."""
    mailbox = await load_mailbox(store, mailbox_id)
    share = MailboxShare(mailbox.owner_user_id, mailbox.visibility)
    counted = access(principal.viewer, [share]) > Access.NOTHING
    return SkippedMailOut(
        mailbox_id=mailbox.id,
        scope=mailbox.sync.scope,
        skipped_unmatched=await skipped_unmatched(store, mailbox.id) if counted else None,
    )
