"""Contacts, companies and deals: the CRM records mail is logged on.

The three share one shape of operations (create, read, patch, upsert by `external_id`, list,
timeline); `RecordKind` holds what differs between them.
"""

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pymongo.errors import DuplicateKeyError

from mailsync_api.pagination import Page, PageParams, paginate
from mailsync_api.problems import ProblemError, conflict, invalid, not_found
from mailsync_api.schemas.threads import ThreadOut
from mailsync_api.stored import as_stored
from mailsync_api.threads import thread_page
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import (
    CompanyDocument,
    ContactDocument,
    DealDocument,
    StoredDocument,
)
from mailsync_shared.storage.scoped import WorkspaceCollection, WorkspaceStore
from mailsync_shared.visibility import Viewer

DocT = TypeVar("DocT", bound=StoredDocument)
OutT = TypeVar("OutT")


@dataclass(frozen=True)
class RecordKind(Generic[DocT]):
    label: str
    collection: str
    document: type[DocT]
    thread_field: str = "contact_ids"
    required: frozenset[str] = frozenset()

    def of(self, store: WorkspaceStore) -> WorkspaceCollection:
        return store.collection(self.collection)


CONTACTS = RecordKind("contact", "contacts", ContactDocument, "contact_ids", frozenset({"emails"}))
COMPANIES = RecordKind("company", "companies", CompanyDocument, "company_ids", frozenset({"name"}))
DEALS = RecordKind(
    "deal", "deals", DealDocument, "deal_ids", frozenset({"name", "stage", "status"})
)


async def load(kind: RecordKind[DocT], store: WorkspaceStore, record_id: str) -> DocT:
    document = await kind.of(store).find_one({"_id": record_id})
    if document is None:
        raise not_found(kind.label)
    return kind.document.from_document(document)


async def create(kind: RecordKind[DocT], store: WorkspaceStore, fields: Mapping[str, Any]) -> DocT:
    record = as_stored(kind.document.model_validate({**fields, "workspace_id": store.workspace_id}))
    await _check_external_id_free(kind, store, record.model_dump().get("external_id"), None)
    try:
        await kind.of(store).insert_one(record.to_document())
    except DuplicateKeyError as error:
        raise conflict(f"the {kind.label} already exists") from error
    return record


def changes_of(kind: RecordKind[DocT], patch: Mapping[str, Any]) -> dict[str, Any]:
    """The fields a PATCH sets; `null` clears optional fields and is refused for required ones."""
    changes = dict(patch)
    for field, value in patch.items():
        if value is not None:
            continue
        if field in kind.required or field == "name":
            raise invalid(f"body.{field}", "cannot be null")
        if kind.document.model_fields[field].default_factory is list:
            changes[field] = []
    return changes


async def update(
    kind: RecordKind[DocT], store: WorkspaceStore, record_id: str, changes: Mapping[str, Any]
) -> DocT:
    if "external_id" in changes:
        await _check_external_id_free(kind, store, changes["external_id"], record_id)
    if not changes:
        return await load(kind, store, record_id)
    document = await kind.of(store).find_one_and_update({"_id": record_id}, {"$set": dict(changes)})
    if document is None:
        raise not_found(kind.label)
    return kind.document.from_document(document)


async def upsert_by_external_id(
    kind: RecordKind[DocT], store: WorkspaceStore, external_id: str, fields: Mapping[str, Any]
) -> tuple[DocT, bool]:
    """Create or replace the record the CRM of record knows as `external_id`.

    Returns the record and whether it was created.
    """
    template = kind.document.model_validate(
        {**fields, "external_id": external_id, "workspace_id": store.workspace_id}
    ).to_document()
    on_insert: dict[str, Any] = {
        key: template[key] for key in ("_id", "created_at") if key in template
    }
    if "source" in template:
        on_insert["source"] = template["source"]
    before = await kind.of(store).find_one_and_update(
        {"external_id": external_id},
        {"$set": {key: template[key] for key in fields}, "$setOnInsert": on_insert},
        upsert=True,
        return_new=False,
    )
    after = await kind.of(store).find_one({"external_id": external_id})
    if after is None:  # only if it was deleted in between
        raise ProblemError(409, f"the {kind.label} changed while it was written; try again")
    return kind.document.from_document(after), before is None


async def page(
    kind: RecordKind[DocT],
    store: WorkspaceStore,
    params: PageParams,
    render: Callable[[DocT], OutT],
    filter_: Mapping[str, Any] | None = None,
) -> Page[OutT]:
    async def render_documents(documents: Sequence[Document]) -> list[OutT]:
        return [render(kind.document.from_document(document)) for document in documents]

    return await paginate(
        kind.of(store), filter_ or {}, params, sort_field="created_at", render=render_documents
    )


async def timeline(
    kind: RecordKind[DocT],
    store: WorkspaceStore,
    viewer: Viewer,
    record_id: str,
    params: PageParams,
) -> Page[ThreadOut]:
    """Threads linked to the record that `viewer` may see, most recent first."""
    await load(kind, store, record_id)
    return await thread_page(store, viewer, {kind.thread_field: record_id}, params)


async def require_existing(
    kind: RecordKind[DocT], store: WorkspaceStore, ids: Iterable[str], field: str
) -> None:
    """Links to other records must point into the same workspace."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return
    found = await kind.of(store).find({"_id": {"$in": wanted}}, projection={"_id": 1})
    missing = sorted(set(wanted) - {document["_id"] for document in found})
    if missing:
        raise invalid(field, f"no {kind.label} with id {', '.join(missing)}")


async def require_free_emails(
    store: WorkspaceStore, emails: Sequence[str], contact_id: str | None
) -> None:
    """An address belongs to at most one contact, so mail links to one person."""
    filter_: dict[str, Any] = {"emails": {"$in": list(emails)}}
    if contact_id is not None:
        filter_["_id"] = {"$ne": contact_id}
    other = await store.contacts.find_one(filter_)
    if other is not None:
        taken = sorted(set(emails) & set(other.get("emails", [])))
        raise conflict(f"{', '.join(taken)} already belongs to contact {other['_id']}")


async def _check_external_id_free(
    kind: RecordKind[DocT], store: WorkspaceStore, external_id: str | None, record_id: str | None
) -> None:
    if external_id is None:
        return
    filter_: dict[str, Any] = {"external_id": external_id}
    if record_id is not None:
        filter_["_id"] = {"$ne": record_id}
    if await kind.of(store).find_one(filter_) is not None:
        raise conflict(f"another {kind.label} has external_id {external_id!r}")
