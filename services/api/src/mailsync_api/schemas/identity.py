"""People, their roles, and API keys over HTTP. Keys go out once, at creation."""

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from mailsync_api.permissions import Role, Scope
from mailsync_api.schemas.common import DocumentView, EmailAddress, Input, Name, unique

Scopes = Annotated[list[Scope], AfterValidator(unique)]


class UserIn(Input):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "maria@acme.test", "name": "Maria Lopez", "role": "member"}]
        }
    )

    email: EmailAddress
    name: Name = ""
    role: Role = Field(default="member", description="`viewer`, `member`, `admin` or `owner`.")


class UserPatch(Input):
    model_config = ConfigDict(json_schema_extra={"examples": [{"role": "admin"}]})

    name: Name | None = None
    role: Role | None = None


class UserOut(DocumentView):
    id: str
    email: str | None
    name: str
    role: Role
    created_at: datetime


class InvitedUser(UserOut):
    token: str = Field(description="The person's personal token; shown only in this answer.")


class MeOut(BaseModel):
    """Who the credential in use stands for."""

    workspace_id: str
    key_id: str
    user: UserOut | None = Field(description="The person; null for a system's API key.")
    role: Role | None
    scopes: list[Scope]


class ApiKeyIn(Input):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "CRM sync", "scopes": ["read", "write"]}]}
    )

    name: Name = Field(min_length=1, description="What the key is for.")
    scopes: Scopes = Field(min_length=1, description="What the key may do.")


class ApiKeyOut(DocumentView):
    id: str
    name: str
    prefix: str = Field(description="First characters of the key, to tell keys apart.")
    user_id: str | None = Field(description="The person a personal token acts for.")
    scopes: list[str] | None = Field(description="Null for a personal token: the role decides.")
    created_at: datetime
    revoked_at: datetime | None


class CreatedApiKey(ApiKeyOut):
    key: str = Field(description="The key; shown only in this answer, keep it secret.")
