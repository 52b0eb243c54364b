"""Contacts: the people mail is logged on."""

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from mailsync_api import records
from mailsync_api.dependencies import PageDep, ViewerDep, WorkspaceDep
from mailsync_api.pagination import Page
from mailsync_api.problems import problem_responses
from mailsync_api.records import COMPANIES, CONTACTS
from mailsync_api.schemas.common import ExternalId, RecordId
from mailsync_api.schemas.records import ContactIn, ContactOut, ContactPatch, ContactUpsert
from mailsync_api.schemas.threads import ThreadOut

router = APIRouter(
    prefix="/v1/contacts", tags=["contacts"], responses=problem_responses(401, 403, 404, 422)
)

ContactId = Annotated[RecordId, Path(description="Id of the contact.")]


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(409))
async def create_contact(body: ContactIn, store: WorkspaceDep) -> ContactOut:
    """Add a contact; each email address can belong to one contact only."""
    await records.require_free_emails(store, body.emails, None)
    if body.company_id is not None:
        await records.require_existing(COMPANIES, store, [body.company_id], "body.company_id")
    return ContactOut.of(await records.create(CONTACTS, store, body.model_dump()))


@router.get("")
async def list_contacts(store: WorkspaceDep, page: PageDep) -> Page[ContactOut]:
    """Contacts, newest first."""
    return await records.page(CONTACTS, store, page, ContactOut.of)


@router.get("/{contact_id}")
async def get_contact(contact_id: ContactId, store: WorkspaceDep) -> ContactOut:
    """One contact."""
    return ContactOut.of(await records.load(CONTACTS, store, contact_id))


@router.patch("/{contact_id}", responses=problem_responses(409))
async def update_contact(
    contact_id: ContactId, body: ContactPatch, store: WorkspaceDep
) -> ContactOut:
    """Change some of a contact's fields."""
    changes = records.changes_of(CONTACTS, body.model_dump(exclude_unset=True))
    await records.load(CONTACTS, store, contact_id)
    if "emails" in changes:
        await records.require_free_emails(store, changes["emails"], contact_id)
    if changes.get("company_id") is not None:
        await records.require_existing(COMPANIES, store, [changes["company_id"]], "body.company_id")
    return ContactOut.of(await records.update(CONTACTS, store, contact_id, changes))


@router.put("/by-external-id/{external_id}", responses=problem_responses(409))
async def upsert_contact(
    external_id: Annotated[ExternalId, Path()],
    body: ContactUpsert,
    store: WorkspaceDep,
    response: Response,
) -> ContactOut:
    """Create or replace the contact the CRM of record knows by `external_id`."""
    existing = await store.contacts.find_one({"external_id": external_id}, projection={"_id": 1})
    await records.require_free_emails(store, body.emails, existing["_id"] if existing else None)
    if body.company_id is not None:
        await records.require_existing(COMPANIES, store, [body.company_id], "body.company_id")
    contact, created = await records.upsert_by_external_id(
        CONTACTS, store, external_id, body.model_dump()
    )
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return ContactOut.of(contact)


@router.get("/{contact_id}/timeline")
async def contact_timeline(
    contact_id: ContactId, store: WorkspaceDep, viewer: ViewerDep, page: PageDep
) -> Page[ThreadOut]:
    """Threads with this contact, most recent first, each with its messages oldest first."""
    return await records.timeline(CONTACTS, store, viewer, contact_id, page)
