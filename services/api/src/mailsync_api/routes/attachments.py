"""Attachments: files uploaded once, then named by id in send requests."""

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, status

from mailsync_api import attachment_uploads
from mailsync_api.dependencies import SettingsDep, WorkspaceDep
from mailsync_api.problems import problem_responses
from mailsync_api.schemas.attachments import AttachmentOut
from mailsync_api.schemas.common import Name

router = APIRouter(
    prefix="/v1/attachments", tags=["sending"], responses=problem_responses(401, 403, 422)
)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(413),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "The file's bytes; its `Content-Type` becomes the attachment's type.",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def upload_attachment(
    request: Request,
    store: WorkspaceDep,
    settings: SettingsDep,
    filename: Annotated[Name, Query(min_length=1, description="The file's name as sent.")],
    content_type: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> AttachmentOut:
    """Upload a file to send; name its id in `attachments` of a send request (10 MiB in all)."""
    data = await request.body()
    return await attachment_uploads.upload(
        store,
        data,
        filename=filename,
        content_type=attachment_uploads.media_type(content_type),
        limit=settings.max_attachments_bytes,
    )
