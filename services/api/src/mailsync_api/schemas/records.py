"""Contacts, companies and deals over HTTP."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator

from mailsync_api.deal_stages import settled_status
from mailsync_api.schemas.common import (
    DocumentView,
    DomainName,
    EmailAddress,
    ExternalId,
    Input,
    Name,
    RecordId,
    unique,
)

Emails = Annotated[list[EmailAddress], AfterValidator(unique)]
Domains = Annotated[list[DomainName], AfterValidator(unique)]
RecordIds = Annotated[list[RecordId], AfterValidator(unique)]
DealStatus = Literal["open", "won", "lost"]
STAGE_DESCRIPTION = (
    "Pipeline stage. `won` and `lost` (any case) close the deal: `status` follows them, and "
    "a contradicting `status` is refused."
)
STATUS_DESCRIPTION = (
    "`open` deals are linked to new mail; `won` and `lost` ones are not. Left out, it follows "
    "the stage (`open` for any other stage)."
)


class StageAndStatus(Input):
    """A deal's stage and status, checked together (`mailsync_api.deal_stages`)."""

    stage: Name = Field(default="open", min_length=1, description=STAGE_DESCRIPTION)
    status: DealStatus = Field(default="open", description=STATUS_DESCRIPTION)

    @model_validator(mode="after")
    def _settle_status(self) -> "StageAndStatus":
        given = self.status if "status" in self.model_fields_set else None
        self.status = settled_status(self.stage, given)
        return self


class ContactPatch(Input):
    model_config = Input.model_config | ConfigDict(
        json_schema_extra={"examples": [{"name": "Ann Smith"}]}
    )

    name: Name | None = None
    emails: Emails | None = Field(default=None, min_length=1, max_length=50)
    company_id: RecordId | None = None
    external_id: ExternalId | None = None


class ContactUpsert(Input):
    model_config = Input.model_config | ConfigDict(
        json_schema_extra={"examples": [{"name": "Ann Client", "emails": ["ann@client.test"]}]}
    )

    name: Name = ""
    emails: Emails = Field(min_length=1, max_length=50, description="Lower-cased on the way in.")
    company_id: RecordId | None = None


class ContactIn(ContactUpsert):
    model_config = Input.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Ann Client", "emails": ["ann@client.test"], "external_id": "crm-1"}
            ]
        }
    )

    external_id: ExternalId | None = Field(
        default=None, description="The contact's id in the CRM of record."
    )


class ContactOut(DocumentView):
    id: str
    name: str
    emails: list[str]
    company_id: str | None
    external_id: str | None
    source: str
    created_at: datetime


class CompanyUpsert(Input):
    model_config = Input.model_config | ConfigDict(
        json_schema_extra={"examples": [{"name": "Client Ltd", "domains": ["client.test"]}]}
    )

    name: Name = Field(min_length=1)
    domains: Domains = Field(default_factory=list, max_length=50)


class CompanyIn(CompanyUpsert):
    model_config = Input.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {"name": "Client Ltd", "domains": ["client.test"], "external_id": "crm-co-1"}
            ]
        }
    )

    external_id: ExternalId | None = None


class CompanyPatch(Input):
    model_config = Input.model_config | ConfigDict(
        json_schema_extra={"examples": [{"domains": ["client.test", "client-group.test"]}]}
    )

    name: Name | None = Field(default=None, min_length=1)
    domains: Domains | None = Field(default=None, max_length=50)
    external_id: ExternalId | None = None


class CompanyOut(DocumentView):
    id: str
    name: str
    domains: list[str]
    external_id: str | None
    created_at: datetime


class DealPatch(Input):
    model_config = Input.model_config | ConfigDict(
        json_schema_extra={"examples": [{"stage": "negotiation"}]}
    )

    name: Name | None = Field(default=None, min_length=1)
    stage: Name | None = Field(default=None, min_length=1, description=STAGE_DESCRIPTION)
    status: DealStatus | None = Field(
        default=None,
        description="Left out while the stage changes: the stage decides (moving out of `won` "
        "or `lost` reopens the deal).",
    )
    contact_ids: RecordIds | None = Field(default=None, max_length=100)
    company_id: RecordId | None = None
    value: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    external_id: ExternalId | None = None


class DealUpsert(StageAndStatus):
    model_config = Input.model_config | ConfigDict(
        json_schema_extra={
            "examples": [{"name": "Renewal 2026", "stage": "proposal", "value": 12000}]
        }
    )

    name: Name = Field(min_length=1)
    contact_ids: RecordIds = Field(default_factory=list, max_length=100)
    company_id: RecordId | None = None
    value: float | None = Field(default=None, ge=0, allow_inf_nan=False)


class DealIn(DealUpsert):
    external_id: ExternalId | None = None


class DealOut(DocumentView):
    id: str
    name: str
    stage: str
    status: str
    contact_ids: list[str]
    company_id: str | None
    value: float | None
    external_id: str | None
    created_at: datetime
