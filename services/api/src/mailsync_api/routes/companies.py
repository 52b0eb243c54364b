"""Companies: organisations, matched to mail by their domains."""

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from mailsync_api import records
from mailsync_api.dependencies import PageDep, ViewerDep, WorkspaceDep
from mailsync_api.pagination import Page
from mailsync_api.problems import problem_responses
from mailsync_api.records import COMPANIES
from mailsync_api.schemas.common import ExternalId, RecordId
from mailsync_api.schemas.records import CompanyIn, CompanyOut, CompanyPatch, CompanyUpsert
from mailsync_api.schemas.threads import ThreadOut

router = APIRouter(
    prefix="/v1/companies", tags=["companies"], responses=problem_responses(401, 403, 404, 422)
)

CompanyId = Annotated[RecordId, Path(description="Id of the company.")]


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(409))
async def create_company(body: CompanyIn, store: WorkspaceDep) -> CompanyOut:
    """Add a company."""
    return CompanyOut.of(await records.create(COMPANIES, store, body.model_dump()))


@router.get("")
async def list_companies(store: WorkspaceDep, page: PageDep) -> Page[CompanyOut]:
    """Companies, newest first."""
    return await records.page(COMPANIES, store, page, CompanyOut.of)


@router.get("/{company_id}")
async def get_company(company_id: CompanyId, store: WorkspaceDep) -> CompanyOut:
    """One company."""
    return CompanyOut.of(await records.load(COMPANIES, store, company_id))


@router.patch("/{company_id}", responses=problem_responses(409))
async def update_company(
    company_id: CompanyId, body: CompanyPatch, store: WorkspaceDep
) -> CompanyOut:
    """Change some of a company's fields."""
    changes = records.changes_of(COMPANIES, body.model_dump(exclude_unset=True))
    return CompanyOut.of(await records.update(COMPANIES, store, company_id, changes))


@router.put("/by-external-id/{external_id}")
async def upsert_company(
    external_id: Annotated[ExternalId, Path()],
    body: CompanyUpsert,
    store: WorkspaceDep,
    response: Response,
) -> CompanyOut:
    """Create or replace the company the CRM of record knows by `external_id`."""
    company, created = await records.upsert_by_external_id(
        COMPANIES, store, external_id, body.model_dump()
    )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return CompanyOut.of(company)


@router.get("/{company_id}/timeline")
async def company_timeline(
    company_id: CompanyId, store: WorkspaceDep, viewer: ViewerDep, page: PageDep
) -> Page[ThreadOut]:
    """Threads with this company, most recent first, each with its messages oldest first."""
    return await records.timeline(COMPANIES, store, viewer, company_id, page)
