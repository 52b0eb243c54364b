"""Workspaces over HTTP."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, ConfigDict, Field

from mailsync_api.schemas.common import DocumentView, DomainName, EmailAddress, Input, Name, unique


class OwnerIn(Input):
    email: EmailAddress | None = None
    name: Name = ""


class WorkspaceIn(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "name": "Acme",
                    "domains": ["acme.test"],
                    "owner": {"email": "olga@acme.test", "name": "Olga Owner"},
                }
            ]
        }
    )

    name: Name = Field(min_length=1)
    domains: Annotated[list[DomainName], AfterValidator(unique)] = Field(
        default_factory=list, max_length=50, description="The workspace's own mail domains."
    )
    owner: OwnerIn | None = Field(
        default=None, description="The person who owns the workspace; the key is theirs."
    )


class WorkspaceOut(DocumentView):
    id: str
    name: str
    domains: list[str]
    created_at: datetime


class CreatedWorkspace(WorkspaceOut):
    api_key: str = Field(
        description="The owner's personal token; shown only in this answer, keep it secret."
    )
    owner_user_id: str
