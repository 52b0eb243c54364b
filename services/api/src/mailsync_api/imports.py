"""Bulk import of contacts, companies and deals, one report line per row that failed.

Rows are applied one by one with the same checks as the single-record routes, so a bad row
is reported and the others still land. A row with `external_id` is an upsert: importing the
same file twice changes nothing the second time.
"""

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import ValidationError

from mailsync_api import records
from mailsync_api.problems import InvalidParam, ProblemError, invalid
from mailsync_api.records import COMPANIES, CONTACTS, DEALS, RecordKind
from mailsync_api.schemas.imports import (
    LIST_COLUMNS,
    ROW_MODELS,
    ImportReport,
    ImportType,
    RowError,
)
from mailsync_shared.storage.scoped import WorkspaceStore

_SEPARATORS = re.compile(r"[;,\s]+")
KINDS: dict[ImportType, RecordKind[Any]] = {
    "contacts": CONTACTS,
    "companies": COMPANIES,
    "deals": DEALS,
}


class UnsupportedMediaError(Exception):
    """The body is neither JSON nor CSV."""


def _csv_rows(text: str) -> Iterator[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    for raw in reader:
        row: dict[str, Any] = {}
        for column, value in raw.items():
            if column is None:  # cells beyond the header
                row["_extra_cells"] = value
                continue
            if value is None or value.strip() == "":
                continue
            value = value.strip()
            row[column.strip()] = (
                [part for part in _SEPARATORS.split(value) if part]
                if column.strip() in LIST_COLUMNS
                else value
            )
        yield row


def parse_rows(body: bytes, content_type: str, max_rows: int) -> list[dict[str, Any]]:
    """The rows of a JSON or CSV body; raises a 422 problem when the body is not rows."""
    media = content_type.split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise invalid("body", "is not UTF-8") from error
    rows: list[Any]
    if media in {"application/json", ""}:
        try:
            parsed = json.loads(text)
        except ValueError as error:
            raise invalid("body", f"is not JSON: {error}") from error
        if not isinstance(parsed, list):
            raise invalid("body", "must be a JSON array of objects")
        rows = parsed
    elif media in {"text/csv", "application/csv"}:
        try:
            rows = list(_csv_rows(text))
        except csv.Error as error:
            raise invalid("body", f"is not CSV: {error}") from error
    else:
        raise UnsupportedMediaError(media)
    if len(rows) > max_rows:
        raise invalid("body", f"has {len(rows)} rows; at most {max_rows} per import")
    return rows


def _row_error(number: int, row: Any, error: ProblemError | ValidationError) -> RowError:
    external_id = row.get("external_id") if isinstance(row, Mapping) else None
    if isinstance(error, ValidationError):
        params = [
            InvalidParam(
                name=".".join(["rows", str(number), *(str(part) for part in item["loc"])]),
                reason=item["msg"],
            )
            for item in error.errors()
        ]
        detail = "; ".join(f"{param.name}: {param.reason}" for param in params)
        status = 422
    else:
        params = [
            InvalidParam(
                name=".".join(
                    part
                    for part in ("rows", str(number), param["name"].removeprefix("body").strip("."))
                    if part
                ),
                reason=param["reason"],
            )
            for param in error.extensions.get("invalid_params", [])
        ]
        detail, status = error.detail, error.status
    return RowError(
        row=number,
        external_id=external_id if isinstance(external_id, str) else None,
        status=status,
        detail=detail,
        invalid_params=params,
    )


async def _company_by_external_id(store: WorkspaceStore, external_id: str) -> str:
    document = await store.companies.find_one({"external_id": external_id}, projection={"_id": 1})
    if document is None:
        raise invalid("body.company_external_id", f"no company with external_id {external_id!r}")
    company_id: str = document["_id"]
    return company_id


async def _apply(record_type: ImportType, store: WorkspaceStore, fields: dict[str, Any]) -> bool:
    """Create or upsert one validated row; returns whether a record was created."""
    kind = KINDS[record_type]
    external_id = fields.pop("external_id", None)
    company_external_id = fields.pop("company_external_id", None)
    if company_external_id is not None:
        fields["company_id"] = await _company_by_external_id(store, company_external_id)
    if record_type == "contacts":
        existing = None
        if external_id is not None:
            existing = await store.contacts.find_one(
                {"external_id": external_id}, projection={"_id": 1}
            )
        await records.require_free_emails(
            store, fields["emails"], existing["_id"] if existing else None
        )
    if fields.get("company_id") is not None:
        await records.require_existing(COMPANIES, store, [fields["company_id"]], "body.company_id")
    if record_type == "deals":
        await records.require_existing(
            CONTACTS, store, fields.get("contact_ids") or [], "body.contact_ids"
        )
    if external_id is None:
        await records.create(kind, store, {**fields, "source": "import"})
        return True
    _, created = await records.upsert_by_external_id(kind, store, external_id, fields)
    return created


async def import_rows(
    record_type: ImportType, store: WorkspaceStore, rows: list[Any]
) -> ImportReport:
    model = ROW_MODELS[record_type]
    created = updated = 0
    errors: list[RowError] = []
    for number, row in enumerate(rows, start=1):
        try:
            if not isinstance(row, dict):
                raise invalid("body", "each row must be an object")
            fields = model.model_validate(row).model_dump(exclude_unset=False)
            if await _apply(record_type, store, fields):
                created += 1
            else:
                updated += 1
        except (ProblemError, ValidationError) as error:
            errors.append(_row_error(number, row, error))
    return ImportReport(
        record_type=record_type,
        rows=len(rows),
        created=created,
        updated=updated,
        failed=len(errors),
        errors=errors,
    )
