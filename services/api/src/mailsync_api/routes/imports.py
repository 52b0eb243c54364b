"""Bulk import: the CRM of record pushes its contacts, companies and deals in."""

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Request

from mailsync_api.dependencies import SettingsDep, WorkspaceDep
from mailsync_api.imports import UnsupportedMediaError, import_rows, parse_rows
from mailsync_api.problems import ProblemError, problem_responses
from mailsync_api.schemas.imports import IMPORT_BODY, ImportReport, ImportType

router = APIRouter(
    prefix="/v1/imports", tags=["imports"], responses=problem_responses(401, 403, 413, 415, 422)
)

logger = logging.getLogger(__name__)


@router.post("/{record_type}", openapi_extra={"requestBody": IMPORT_BODY})
async def import_records(
    record_type: Annotated[ImportType, Path(description="What the rows are.")],
    request: Request,
    store: WorkspaceDep,
    settings: SettingsDep,
) -> ImportReport:
    """Create or update many records from JSON or CSV; rows with `external_id` are upserts."""
    body = await request.body()
    try:
        rows = parse_rows(body, request.headers.get("content-type", ""), settings.max_import_rows)
    except UnsupportedMediaError as error:
        raise ProblemError(
            415, f"send `application/json` or `text/csv`, not {error}", kind="unsupported-media"
        ) from error
    report = await import_rows(record_type, store, rows)
    logger.info(
        "records imported",
        extra={
            "workspace_id": store.workspace_id,
            "record_type": record_type,
            "created": report.created,
            "updated": report.updated,
            "failed": report.failed,
        },
    )
    return report
