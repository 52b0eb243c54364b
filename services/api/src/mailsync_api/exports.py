"""Exports of records and mail as CSV or JSON, streamed from a database cursor.

Threads and messages pass through `mailsync_shared.visibility` first: what the caller may not
see is left out (private) or blanked (metadata, subject) exactly as on a timeline.
"""

import csv
import io
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, Literal

from mailsync_api import records
from mailsync_api.problems import invalid
from mailsync_api.records import COMPANIES, CONTACTS, DEALS, RecordKind
from mailsync_api.schemas.records import CompanyOut, ContactOut, DealOut
from mailsync_api.schemas.threads import MessageOut
from mailsync_api.threads import messages_by_thread
from mailsync_api.visible_mail import MailView, mail_view, visible_only
from mailsync_shared.storage.documents import (
    CompanyDocument,
    ContactDocument,
    DealDocument,
    MessageDocument,
    ThreadDocument,
)
from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.visibility import Access, Viewer, redact_message, redact_thread

Dataset = Literal["contacts", "companies", "deals", "threads", "messages"]
ExportFormat = Literal["csv", "json"]
RecordType = Literal["contact", "company", "deal"]

RECORD_KINDS: Mapping[RecordType, RecordKind[Any]] = {
    "contact": CONTACTS,
    "company": COMPANIES,
    "deal": DEALS,
}
COLUMNS: Mapping[Dataset, Sequence[str]] = {
    "contacts": ("id", "name", "emails", "company_id", "external_id", "source", "created_at"),
    "companies": ("id", "name", "domains", "external_id", "created_at"),
    "deals": (
        "id",
        "name",
        "stage",
        "status",
        "value",
        "company_id",
        "contact_ids",
        "external_id",
        "created_at",
    ),
    "threads": (
        "id",
        "subject",
        "participants",
        "mailbox_ids",
        "contact_ids",
        "company_ids",
        "deal_ids",
        "private",
        "first_message_at",
        "last_message_at",
        "message_count",
        "access",
    ),
    "messages": (
        "id",
        "thread_id",
        "message_id",
        "direction",
        "date",
        "from",
        "to",
        "cc",
        "subject",
        "body_text",
        "mailbox_ids",
        "access",
    ),
}
_BATCH = 200
# Cells a spreadsheet would run as a formula are quoted (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


async def record_filter(
    dataset: Dataset, store: WorkspaceStore, record_type: RecordType, record_id: str
) -> dict[str, Any]:
    """What of `dataset` belongs to one record; a record of another workspace is a 404."""
    record = await records.load(RECORD_KINDS[record_type], store, record_id)
    if dataset in ("threads", "messages"):
        return {f"{record_type}_ids": record_id}
    if dataset == "contacts":
        if isinstance(record, DealDocument):
            return {"_id": {"$in": record.contact_ids}}
        return {"company_id": record_id} if record_type == "company" else {"_id": record_id}
    if dataset == "companies":
        if isinstance(record, ContactDocument | DealDocument):
            return {"_id": record.company_id}
        return {"_id": record_id}
    if isinstance(record, ContactDocument):
        return {"contact_ids": record_id}
    return {"company_id": record_id} if isinstance(record, CompanyDocument) else {"_id": record_id}


async def export_filter(
    dataset: Dataset, store: WorkspaceStore, record_type: str | None, record_id: str | None
) -> dict[str, Any]:
    if (record_type is None) != (record_id is None):
        name = "query.record_id" if record_id is None else "query.record_type"
        raise invalid(name, "give `record_type` and `record_id` together")
    if record_type is None or record_id is None:
        return {}
    kind: RecordType = record_type  # type: ignore[assignment]
    return await record_filter(dataset, store, kind, record_id)


async def _records(
    dataset: Dataset, store: WorkspaceStore, filter_: Mapping[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    collection = store.collection(dataset)
    async for document in collection.iterate(filter_, sort=[("_id", 1)], batch_size=_BATCH):
        if dataset == "contacts":
            out: Any = ContactOut.of(ContactDocument.from_document(document))
        elif dataset == "companies":
            out = CompanyOut.of(CompanyDocument.from_document(document))
        else:
            out = DealOut.of(DealDocument.from_document(document))
        yield out.model_dump(mode="json")


def _thread_row(thread: ThreadDocument) -> dict[str, Any]:
    row: dict[str, Any] = thread.model_dump(mode="json", include=set(COLUMNS["threads"]))
    row["id"] = thread.id
    return row


async def _visible_thread_batches(
    store: WorkspaceStore, view: MailView, filter_: Mapping[str, Any]
) -> AsyncIterator[list[ThreadDocument]]:
    """Threads the viewer sees anything of, `_BATCH` at a time."""
    query = await visible_only(store, view.viewer, filter_)
    batch: list[ThreadDocument] = []
    async for document in store.threads.iterate(query, sort=[("_id", 1)], batch_size=_BATCH):
        thread = ThreadDocument.from_document(document)
        if view.of_thread(thread) is not Access.NOTHING:
            batch.append(thread)
            if len(batch) >= _BATCH:
                yield batch
                batch = []
    if batch:
        yield batch


async def _threads(
    store: WorkspaceStore, viewer: Viewer, filter_: Mapping[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    """Each thread as its messages visible to the viewer make it (`seen_thread`)."""
    view = await mail_view(store, viewer)
    async for batch in _visible_thread_batches(store, view, filter_):
        by_thread = await messages_by_thread(store, [thread.id for thread in batch])
        for thread in batch:
            seen = view.thread_as_seen(thread, by_thread.get(thread.id, []))
            if seen is not None:
                redacted = redact_thread(_thread_row(seen[0]), seen[1])
                if redacted is not None:
                    yield redacted


async def _messages(
    store: WorkspaceStore, viewer: Viewer, filter_: Mapping[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    view = await mail_view(store, viewer)
    async for batch in _visible_thread_batches(store, view, filter_):
        by_id = {thread.id: thread for thread in batch}
        documents = await store.messages.find(
            {"thread_id": {"$in": list(by_id)}}, sort=[("thread_id", 1), ("_id", 1)]
        )
        for document in documents:
            message = MessageDocument.from_document(document)
            level = view.of_message(message, by_id[message.thread_id])
            row = MessageOut.of(message).model_dump(mode="json", by_alias=True)
            row["thread_id"] = message.thread_id
            redacted = redact_message(row, level)
            if redacted is not None:
                yield redacted


def rows(
    dataset: Dataset, store: WorkspaceStore, viewer: Viewer, filter_: Mapping[str, Any]
) -> AsyncIterator[dict[str, Any]]:
    if dataset == "threads":
        return _threads(store, viewer, filter_)
    if dataset == "messages":
        return _messages(store, viewer, filter_)
    return _records(dataset, store, filter_)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict):
        address = str(value.get("address", ""))
        name = str(value.get("name") or "")
        text = f"{name} <{address}>" if name and address else address or json.dumps(value)
    elif isinstance(value, list):
        return "; ".join(_cell(item) for item in value)
    elif isinstance(value, bool):
        return "true" if value else "false"
    elif isinstance(value, int | float):
        return str(value)
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


async def as_csv(
    columns: Sequence[str], source: AsyncIterator[dict[str, Any]]
) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    async for row in source:
        writer.writerow([_cell(row.get(column)) for column in columns])
        if buffer.tell() > 64_000:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


async def as_json(source: AsyncIterator[dict[str, Any]]) -> AsyncIterator[str]:
    yield "["
    first = True
    async for row in source:
        yield ("\n" if first else ",\n") + json.dumps(row, ensure_ascii=False)
        first = False
    yield "\n]\n"
