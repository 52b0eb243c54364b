"""Threads: conversations, with their links to records; replying on them."""

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import AwareDatetime

from mailsync_api import outbound, sending
from mailsync_api.dependencies import (
    InsertsDep,
    PageDep,
    PrincipalDep,
    PublisherDep,
    SettingsDep,
    ViewerDep,
    WorkspaceDep,
)
from mailsync_api.pagination import Page
from mailsync_api.problems import invalid, problem_responses
from mailsync_api.schemas.common import RecordId
from mailsync_api.schemas.send_requests import ReplyIn, SendRequestOut
from mailsync_api.schemas.threads import ThreadOut
from mailsync_api.threads import ThreadSearch, read_thread, thread_in_view, thread_page
from mailsync_shared.visibility import Access

router = APIRouter(
    prefix="/v1/threads", tags=["threads"], responses=problem_responses(401, 403, 404, 422)
)

ThreadId = Annotated[RecordId, Path(description="Id of the thread.")]


@router.get("")
async def list_threads(
    store: WorkspaceDep,
    viewer: ViewerDep,
    page: PageDep,
    unassigned: Annotated[
        bool, Query(description="Only threads linked to no contact, company or deal.")
    ] = False,
    participant: Annotated[
        str | None,
        Query(max_length=320, description="An address that took part, e.g. `ann@client.test`."),
    ] = None,
    subject: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Text in the subject.")
    ] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Last message at or after this time.")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Last message before this time.")
    ] = None,
) -> Page[ThreadOut]:
    """Threads the caller may see, most recent first, messages oldest first; filters combine."""
    if since is not None and until is not None and since >= until:
        raise invalid("query.until", "must be after `since`")
    search = ThreadSearch(
        unassigned=unassigned, participant=participant, subject=subject, since=since, until=until
    )
    return await thread_page(store, viewer, {}, page, search)


@router.get("/{thread_id}")
async def get_thread(thread_id: ThreadId, store: WorkspaceDep, viewer: ViewerDep) -> ThreadOut:
    """One thread with its messages, oldest first, and why it is linked to each record."""
    return await read_thread(store, viewer, thread_id)


@router.post(
    "/{thread_id}/reply",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"description": "The request made earlier with the same idempotency key."},
        **problem_responses(409, 413),
    },
)
async def reply_to_thread(
    thread_id: ThreadId,
    body: ReplyIn,
    store: WorkspaceDep,
    principal: PrincipalDep,
    publisher: PublisherDep,
    inserts: InsertsDep,
    settings: SettingsDep,
    response: Response,
) -> SendRequestOut:
    """Reply to the thread's last message from a mailbox of the caller's own; needs full
    access to the thread."""
    found = await thread_in_view(store, principal.viewer, thread_id, Access.EVERYTHING)
    if body.idempotency_key is not None:
        earlier = await sending.replay(store, publisher, principal.requester, body.idempotency_key)
        if earlier is not None:
            response.status_code = status.HTTP_200_OK
            return sending.shown(principal, earlier)
    built = await outbound.with_options(
        store,
        body,
        await sending.reply_request(store, found, body, principal),
        extra_cc=body.cc,
        extra_bcc=body.bcc,
        attachments_limit=settings.max_attachments_bytes,
    )
    request, created = await sending.submit(
        store, publisher, built, principal.requester, inserts.insert
    )
    response.status_code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
    return sending.shown(principal, request)
