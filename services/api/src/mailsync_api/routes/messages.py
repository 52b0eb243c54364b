"""Messages: one logged email, found by its `Message-ID` or its id."""

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import AfterValidator, StringConstraints

from mailsync_api.dependencies import ViewerDep, WorkspaceDep
from mailsync_api.messages import find_by_message_id, read_message
from mailsync_api.problems import problem_responses
from mailsync_api.schemas.common import RecordId, no_line_breaks
from mailsync_api.schemas.messages import LoggedMessageOut, MessageList

router = APIRouter(
    prefix="/v1/messages", tags=["threads"], responses=problem_responses(401, 403, 404, 422)
)

MessageIdHeader = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=998),
    AfterValidator(no_line_breaks),
]


@router.get("")
async def find_messages(
    store: WorkspaceDep,
    viewer: ViewerDep,
    message_id: Annotated[
        MessageIdHeader,
        Query(description="The `Message-ID` header, with or without angle brackets."),
    ],
) -> MessageList:
    """The logged message with this `Message-ID`, if the caller may see it (at most one)."""
    return MessageList(items=await find_by_message_id(store, viewer, message_id))


@router.get("/{logged_message_id}")
async def get_message(
    logged_message_id: Annotated[
        RecordId, Path(description="`id` of the logged message (not its `Message-ID`).")
    ],
    store: WorkspaceDep,
    viewer: ViewerDep,
) -> LoggedMessageOut:
    """One logged message, as much of it as the caller may see, with its thread's id."""
    return await read_message(store, viewer, logged_message_id)
