"""Deals: opportunities in the pipeline, linked to contacts and a company."""

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from mailsync_api import records
from mailsync_api.deal_stages import StageConflictError, status_after_change
from mailsync_api.dependencies import PageDep, ViewerDep, WorkspaceDep
from mailsync_api.pagination import Page
from mailsync_api.problems import invalid, problem_responses
from mailsync_api.records import COMPANIES, CONTACTS, DEALS
from mailsync_api.schemas.common import ExternalId, RecordId
from mailsync_api.schemas.records import DealIn, DealOut, DealPatch, DealUpsert
from mailsync_api.schemas.threads import ThreadOut
from mailsync_shared.storage.scoped import WorkspaceStore

router = APIRouter(
    prefix="/v1/deals", tags=["deals"], responses=problem_responses(401, 403, 404, 422)
)

DealId = Annotated[RecordId, Path(description="Id of the deal.")]


async def _require_links(store: WorkspaceStore, fields: Mapping[str, Any]) -> None:
    await records.require_existing(
        CONTACTS, store, fields.get("contact_ids") or [], "body.contact_ids"
    )
    if fields.get("company_id") is not None:
        await records.require_existing(COMPANIES, store, [fields["company_id"]], "body.company_id")


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(409))
async def create_deal(body: DealIn, store: WorkspaceDep) -> DealOut:
    """Add a deal."""
    fields = body.model_dump()
    await _require_links(store, fields)
    return DealOut.of(await records.create(DEALS, store, fields))


@router.get("")
async def list_deals(store: WorkspaceDep, page: PageDep) -> Page[DealOut]:
    """Deals, newest first."""
    return await records.page(DEALS, store, page, DealOut.of)


@router.get("/{deal_id}")
async def get_deal(deal_id: DealId, store: WorkspaceDep) -> DealOut:
    """One deal."""
    return DealOut.of(await records.load(DEALS, store, deal_id))


@router.patch("/{deal_id}", responses=problem_responses(409))
async def update_deal(deal_id: DealId, body: DealPatch, store: WorkspaceDep) -> DealOut:
    """Change some of a deal's fields, such as its stage; a `won` or `lost` stage closes it."""
    changes = records.changes_of(DEALS, body.model_dump(exclude_unset=True))
    await _require_links(store, changes)
    if "stage" in changes or "status" in changes:
        current = await records.load(DEALS, store, deal_id)
        try:
            changes["status"] = status_after_change(
                current.stage, current.status, changes.get("stage"), changes.get("status")
            )
        except StageConflictError as error:
            raise invalid("body.status", str(error)) from error
    return DealOut.of(await records.update(DEALS, store, deal_id, changes))


@router.put("/by-external-id/{external_id}")
async def upsert_deal(
    external_id: Annotated[ExternalId, Path()],
    body: DealUpsert,
    store: WorkspaceDep,
    response: Response,
) -> DealOut:
    """Create or replace the deal the CRM of record knows by `external_id`."""
    fields = body.model_dump()
    await _require_links(store, fields)
    deal, created = await records.upsert_by_external_id(DEALS, store, external_id, fields)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return DealOut.of(deal)


@router.get("/{deal_id}/timeline")
async def deal_timeline(
    deal_id: DealId, store: WorkspaceDep, viewer: ViewerDep, page: PageDep
) -> Page[ThreadOut]:
    """Threads linked to this deal, most recent first, each with its messages oldest first."""
    return await records.timeline(DEALS, store, viewer, deal_id, page)
