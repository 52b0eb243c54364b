"""Send requests: new messages from the user's own address, and how sending went."""

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from mailsync_api import outbound, sending
from mailsync_api.dependencies import PublisherDep, SettingsDep, WorkspaceDep
from mailsync_api.problems import not_found, problem_responses
from mailsync_api.schemas.common import RecordId
from mailsync_api.schemas.send_requests import ComposeIn, SendRequestOut
from mailsync_shared.storage.documents import SendRequestDocument

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
    publisher: PublisherDep,
    settings: SettingsDep,
    response: Response,
) -> SendRequestOut:
    """Send a new message from one of the workspace's mailboxes; it goes out shortly after."""
    if body.idempotency_key is not None:
        earlier = await sending.replay(store, publisher, body.idempotency_key)
        if earlier is not None:
            response.status_code = status.HTTP_200_OK
            return SendRequestOut.of(earlier)
    built = await outbound.with_options(
        store,
        body,
        await sending.compose_request(store, body),
        attachments_limit=settings.max_attachments_bytes,
    )
    request, created = await sending.submit(store, publisher, built)
    response.status_code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
    return SendRequestOut.of(request)


@router.get("/{send_request_id}")
async def get_send_request(
    send_request_id: Annotated[RecordId, Path()], store: WorkspaceDep
) -> SendRequestOut:
    """A send request and how far it got: queued, sending, sent, failed, unknown, cancelled."""
    document = await store.send_requests.find_one({"_id": send_request_id})
    if document is None:
        raise not_found("send request")
    return SendRequestOut.of(SendRequestDocument.from_document(document))
