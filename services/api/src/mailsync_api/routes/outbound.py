"""Forwarding from a thread, and following or cancelling send requests."""

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from mailsync_api import outbound, sending
from mailsync_api.dependencies import (
    InsertsDep,
    PageDep,
    PrincipalDep,
    PublisherDep,
    SettingsDep,
    WorkspaceDep,
)
from mailsync_api.pagination import Page, paginate
from mailsync_api.principal import Principal
from mailsync_api.problems import problem_responses
from mailsync_api.schemas.common import RecordId
from mailsync_api.schemas.forwards import ForwardIn
from mailsync_api.schemas.send_requests import SendRequestOut
from mailsync_api.threads import thread_in_view
from mailsync_shared.send_outbox import as_it_stands
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import MailboxDocument, SendState
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.visibility import Access

router = APIRouter(prefix="/v1", tags=["sending"], responses=problem_responses(401, 403, 404, 422))


@router.post(
    "/threads/{thread_id}/forward",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"description": "The request made earlier with the same idempotency key."},
        **problem_responses(409, 413),
    },
)
async def forward_from_thread(
    thread_id: Annotated[RecordId, Path(description="Id of the thread.")],
    body: ForwardIn,
    store: WorkspaceDep,
    principal: PrincipalDep,
    publisher: PublisherDep,
    inserts: InsertsDep,
    settings: SettingsDep,
    response: Response,
) -> SendRequestOut:
    """Forward a message of the thread, attached whole, with a note; needs full access."""
    found = await thread_in_view(store, principal.viewer, thread_id, Access.EVERYTHING)
    if body.idempotency_key is not None:
        earlier = await sending.replay(store, publisher, principal.requester, body.idempotency_key)
        if earlier is not None:
            response.status_code = status.HTTP_200_OK
            return sending.shown(principal, earlier)
    built = await outbound.forward_request(
        store, found, body, principal=principal, attachments_limit=settings.max_attachments_bytes
    )
    request, created = await sending.submit(
        store, publisher, built, principal.requester, inserts.insert
    )
    response.status_code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
    return sending.shown(principal, request)


@router.post("/send-requests/{send_request_id}/cancel", responses=problem_responses(409))
async def cancel_send_request(
    send_request_id: Annotated[RecordId, Path()], store: WorkspaceDep, principal: PrincipalDep
) -> SendRequestOut:
    """Cancel a request that has not started sending (a scheduled one, say); nothing goes out.

    Only those who may send from its mailbox cancel it."""
    request = await sending.followed_request(store, principal, send_request_id)
    mailbox = await store.mailboxes.find_one({"_id": request.mailbox_id})
    if mailbox is not None and not sending.may_send_from(
        principal, MailboxDocument.from_document(mailbox)
    ):
        raise sending.not_yours()
    cancelled = await outbound.cancel_request(store, send_request_id)
    return sending.shown(principal, cancelled, await sending.owned_mailboxes(store, principal))


def _render(
    store: WorkspaceStore, principal: Principal, state: SendState | None
) -> Callable[[Sequence[Document]], Awaitable[list[SendRequestOut]]]:
    """Each request as it stands (a stored `queued` one whose attempt began is `sending`),
    keeping only those in `state` when one was asked for."""

    async def render(documents: Sequence[Document]) -> list[SendRequestOut]:
        requests = [await as_it_stands(store, document) for document in documents]
        owned = await sending.owned_mailboxes(store, principal)
        return [
            sending.shown(principal, request, owned)
            for request in requests
            if state is None or request.state == state
        ]

    return render


@router.get("/send-requests")
async def list_send_requests(
    store: WorkspaceDep,
    principal: PrincipalDep,
    page: PageDep,
    state: Annotated[SendState | None, Query(description="Only requests in this state.")] = None,
    mailbox_id: Annotated[RecordId | None, Query(description="Only from this mailbox.")] = None,
    thread_id: Annotated[RecordId | None, Query(description="Only on this thread.")] = None,
) -> Page[SendRequestOut]:
    """Send requests, newest first, with their state, attempts and the server's last answer;
    those of mailboxes you may send from or that share everything with you."""
    filter_: dict[str, object] = {
        name: value
        for name, value in (("mailbox_id", mailbox_id), ("thread_id", thread_id))
        if value is not None
    }
    if state is not None:
        # A `sending` request may still be stored `queued` (its attempt's claim says more).
        filter_["state"] = {"$in": ["queued", "sending"]} if state == "sending" else state
    followed = await sending.followed_mailboxes(store, principal)
    wanted = followed if mailbox_id is None else followed & {mailbox_id}
    filter_["mailbox_id"] = {"$in": sorted(wanted)}
    return await paginate(
        store.send_requests,
        filter_,
        page,
        sort_field="created_at",
        render=_render(store, principal, state),
    )
