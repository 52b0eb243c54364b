"""Workspaces over HTTP."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from mailsync_api.schemas.common import DomainName, Input, Name, unique
from mailsync_shared.storage.workspaces import WorkspaceDocument


class WorkspaceIn(Input):
    name: Name = Field(min_length=1)
    domains: Annotated[list[DomainName], AfterValidator(unique)] = Field(
        default_factory=list, max_length=50, description="The workspace's own mail domains."
    )


class WorkspaceOut(BaseModel):
    id: str
    name: str
    domains: list[str]
    created_at: datetime

    @classmethod
    def of(cls, document: WorkspaceDocument) -> "WorkspaceOut":
        return cls(
            id=document.id,
            name=document.name,
            domains=document.domains,
            created_at=document.created_at,
        )


class CreatedWorkspace(WorkspaceOut):
    api_key: str = Field(description="Shown only in this answer; keep it secret.")
