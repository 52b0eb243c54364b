"""Send requests: new messages from the user's own address, and how sending went."""

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from mailsync_api import outbound, sending
from mailsync_api.dependencies import (
    InsertsDep,
    KeptMailboxesDep,
    PrincipalDep,
    PublisherDep,
    SettingsDep,
    WorkspaceDep,
)
from mailsync_api.problems import ProblemError, problem_responses
from mailsync_api.schemas.common import RecordId
from mailsync_api.schemas.send_requests import ComposeIn, SendRequestOut

router = APIRouter(
    prefix="/v1/send-requests", tags=["sending"], responses=problem_responses(401, 403, 404, 422)
)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"description": "The request made earlier with the same idempotency key."},
        **problem_responses(409, 413),
    },
)
async def compose(
    body: ComposeIn,
    store: WorkspaceDep,
    principal: PrincipalDep,
    publisher: PublisherDep,
    inserts: InsertsDep,
    settings: SettingsDep,
    mailboxes: KeptMailboxesDep,
    response: Response,
) -> SendRequestOut:
    """Send a new message from a mailbox of yours; it goes out shortly after."""
    try:
        mailbox = await sending.chosen_mailbox(store, body.mailbox_id, principal, mailboxes)
        built = await outbound.with_options(
            store,
            body,
            sending.compose_request(store, body, mailbox),
            mailbox=mailbox,
            attachments_limit=settings.max_attachments_bytes,
        )
    except ProblemError:
        # A replay gets the earlier request even where a new one would now be refused (its
        # `send_at` has passed, its mailbox was disconnected since).
        earlier = None
        if body.idempotency_key is not None:
            earlier = await sending.replay(
                store, publisher, principal.requester, body.idempotency_key
            )
        if earlier is None:
            raise
        response.status_code = status.HTTP_200_OK
        return sending.shown(principal, earlier)
    request, created = await sending.submit(
        store, publisher, built, principal.requester, inserts.insert
    )
    response.status_code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
    return sending.shown(principal, request)


@router.get("/{send_request_id}")
async def get_send_request(
    send_request_id: Annotated[RecordId, Path()], store: WorkspaceDep, principal: PrincipalDep
) -> SendRequestOut:
    """A send request and how far it got: queued, sending, sent, failed, unknown, cancelled."""
    request = await sending.followed_request(store, principal, send_request_id)
    return sending.shown(principal, request, await sending.owned_mailboxes(store, principal))
