"""Workspaces and their API keys: the system collections outside any one workspace."""

from datetime import datetime
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field

from mailsync_shared.clock import utcnow
from mailsync_shared.ids import new_id


class SystemDocument(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    id: str = Field(default_factory=new_id, alias="_id")

    def to_document(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, mode="python")

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Self:
        return cls.model_validate(document)


class WorkspaceDocument(SystemDocument):
    """A tenant; its `_id` is the `workspace_id` of everything it owns."""

    name: str
    domains: list[str] = Field(
        default_factory=list, description="The workspace's own mail domains, lower-case."
    )
    created_at: datetime = Field(default_factory=utcnow)


class ApiKeyDocument(SystemDocument):
    """An API key, stored only as the SHA-256 hex digest of the key."""

    key_hash: str
    workspace_id: str
    prefix: str = Field(description="First characters of the key, to tell keys apart.")
    created_at: datetime = Field(default_factory=utcnow)
    revoked_at: datetime | None = None
    name: str = Field(default="", description="What the key is for, chosen by its creator.")
    user_id: str | None = Field(
        default=None, description="The person the key acts for; None for a system's key."
    )
    scopes: list[str] | None = Field(
        default=None, description="What the key may do; None: every scope (a person's token)."
    )
