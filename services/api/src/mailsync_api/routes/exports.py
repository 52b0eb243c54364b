"""Exports: contacts, companies, deals, threads and messages as CSV or JSON, streamed."""

from typing import Annotated

from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse

from mailsync_api import exports
from mailsync_api.dependencies import PrincipalDep, WorkspaceDep
from mailsync_api.exports import Dataset, ExportFormat, RecordType
from mailsync_api.problems import problem_responses
from mailsync_api.schemas.common import RecordId

router = APIRouter(
    prefix="/v1/exports", tags=["exports"], responses=problem_responses(401, 403, 404, 422)
)

MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


@router.get(
    "/{dataset}",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The rows, streamed; mail the caller may not see is left out or "
            "blanked as on a timeline.",
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "text/csv": {"schema": {"type": "string"}},
            },
        }
    },
)
async def export(
    dataset: Annotated[Dataset, Path(description="What to export.")],
    store: WorkspaceDep,
    principal: PrincipalDep,
    format: Annotated[ExportFormat, Query(description="`csv` or `json`.")] = "json",
    record_type: Annotated[
        RecordType | None, Query(description="With `record_id`: only what belongs to this record.")
    ] = None,
    record_id: Annotated[
        RecordId | None, Query(description="Id of the record named by `record_type`.")
    ] = None,
) -> StreamingResponse:
    """Export the whole workspace, or what belongs to one record, as CSV or JSON."""
    filter_ = await exports.export_filter(dataset, store, record_type, record_id)
    source = exports.rows(dataset, store, principal.viewer, filter_)
    body = (
        exports.as_csv(exports.COLUMNS[dataset], source)
        if format == "csv"
        else exports.as_json(source)
    )
    return StreamingResponse(
        body,
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{dataset}.{format}"'},
    )
