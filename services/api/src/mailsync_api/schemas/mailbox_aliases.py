"""Other addresses a mailbox sends as."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from mailsync_api.schemas.common import EmailAddress, Input, Name
from mailsync_shared.storage.documents import MailboxAlias


class AliasIn(Input):
    model_config = Input.model_config | ConfigDict(
        json_schema_extra={"examples": [{"address": "sales@acme.test", "name": "Acme Sales"}]}
    )

    address: EmailAddress
    name: Name = Field(default="", description="Display name used with it; else the mailbox's.")


class AliasOut(BaseModel):
    address: str
    name: str
    verified: bool = Field(description="Only a verified alias may be used as From.")
    verified_at: datetime | None
    verified_by: str | None = Field(
        default=None, description="Who verified it: `user:<id>`, or `key:<id>` for an API key."
    )

    @classmethod
    def of(cls, alias: MailboxAlias) -> "AliasOut":
        return cls(
            address=alias.address,
            name=alias.name,
            verified=alias.verified,
            verified_at=alias.verified_at,
            verified_by=alias.verified_by,
        )
