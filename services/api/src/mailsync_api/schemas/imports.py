"""Bulk imports over HTTP: rows in, a report per row out."""

from typing import Any, Literal

from pydantic import BaseModel, Field

from mailsync_api.problems import InvalidParam
from mailsync_api.schemas.common import ExternalId
from mailsync_api.schemas.records import CompanyUpsert, ContactUpsert, DealUpsert

ImportType = Literal["contacts", "companies", "deals"]


class ContactRow(ContactUpsert):
    external_id: ExternalId | None = Field(
        default=None, description="Upsert key: the row replaces the contact with this id."
    )
    company_external_id: ExternalId | None = Field(
        default=None, description="Link to the company the CRM of record knows by this id."
    )


class CompanyRow(CompanyUpsert):
    external_id: ExternalId | None = None


class DealRow(DealUpsert):
    external_id: ExternalId | None = None
    company_external_id: ExternalId | None = None


ROW_MODELS: dict[ImportType, type[ContactRow | CompanyRow | DealRow]] = {
    "contacts": ContactRow,
    "companies": CompanyRow,
    "deals": DealRow,
}

# Columns whose CSV cell holds several values, separated by `;`, `,` or spaces.
LIST_COLUMNS = frozenset({"emails", "domains", "contact_ids"})


class RowError(BaseModel):
    row: int = Field(description="1-based: the first data row (after a CSV header) is 1.")
    external_id: str | None
    status: int = Field(description="What the row alone would have been answered: 409, 422.")
    detail: str
    invalid_params: list[InvalidParam] = Field(default_factory=list)


class ImportReport(BaseModel):
    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "record_type": "contacts",
                    "rows": 3,
                    "created": 1,
                    "updated": 1,
                    "failed": 1,
                    "errors": [
                        {
                            "row": 3,
                            "external_id": "crm-17",
                            "status": 422,
                            "detail": "emails.0: value is not a valid email address",
                            "invalid_params": [
                                {"name": "rows.3.emails.0", "reason": "not a valid address"}
                            ],
                        }
                    ],
                }
            ]
        }
    }

    record_type: ImportType
    rows: int
    created: int
    updated: int
    failed: int
    errors: list[RowError]


IMPORT_BODY: dict[str, Any] = {
    "required": True,
    "description": (
        "A JSON array of objects, or CSV with a header row. CSV cells of `emails`, `domains` "
        "and `contact_ids` hold several values separated by `;`; empty cells are absent fields."
    ),
    "content": {
        "application/json": {
            "schema": {"type": "array", "items": {"type": "object"}, "maxItems": 10000},
            "example": [
                {
                    "external_id": "crm-1",
                    "name": "Ann Client",
                    "emails": ["ann@client.test"],
                    "company_external_id": "crm-co-1",
                }
            ],
        },
        "text/csv": {
            "schema": {"type": "string"},
            "example": "external_id,name,emails\ncrm-1,Ann Client,ann@client.test;ann@home.test\n",
        },
    },
}
