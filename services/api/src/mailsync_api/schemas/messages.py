"""Logged messages found on their own, outside a thread."""

from pydantic import BaseModel, Field

from mailsync_api.schemas.threads import MessageOut


class LoggedMessageOut(MessageOut):
    thread_id: str = Field(description="The thread it is logged on (`GET /v1/threads/{id}`).")


class MessageList(BaseModel):
    items: list[LoggedMessageOut] = Field(description="At most one: a `Message-ID` is logged once.")
