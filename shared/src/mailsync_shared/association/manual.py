"""A person's (re)association of a thread, and suggestions for threads nothing matched.

A manual association replaces the thread's links with exactly the records given (empty
lists unassign it) and sets `manually_linked`. From then on associate adds new messages to
the thread without touching its links, a merge keeps them, and no rule change re-links it:
only another manual association changes them.

Suggestions for an unassigned thread, strongest first (score in brackets):

- `linked_elsewhere` (3): records another thread with the same counterpart address is
  linked to (the same person wrote from this address before).
- `same_name` (2): contacts whose name equals a participant's display name (a client
  writing from a private address).
- `same_domain` (2): contacts with an address at the participant's domain, their company
  and its open deals (a colleague of a known contact; free-mail domains excluded).
- `company_name` (1): companies whose name matches the participant's domain label
  (`acme-corp.test` and "Acme Corp").
"""

import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from mailsync_shared.association.linking import Links, counterpart_addresses
from mailsync_shared.association.records import (
    links_update,
    mailbox_addresses,
    thread_associated_event,
)
from mailsync_shared.capture_policy.rules import free_mail_domains
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.mail import Address
from mailsync_shared.contracts.records import LinkReason
from mailsync_shared.ids import new_id
from mailsync_shared.mail.addresses import domain_and_parents, domain_of
from mailsync_shared.outbox import Publish, deliver, push
from mailsync_shared.storage.documents import (
    CompanyDocument,
    ContactDocument,
    DealDocument,
    ThreadDocument,
)
from mailsync_shared.storage.scoped import WorkspaceStore

RecordType = Literal["contact", "company", "deal"]


class UnknownRecordsError(LookupError):
    """Some of the records to link do not exist in the workspace."""

    def __init__(self, missing: dict[str, list[str]]) -> None:
        super().__init__(f"unknown records: {missing}")
        self.missing = missing


class Suggestion(BaseModel):
    model_config = ConfigDict(frozen=True)

    record_type: RecordType
    record_id: str
    name: str
    reason: str
    score: int


async def _existing(
    store: WorkspaceStore,
    contact_ids: Sequence[str],
    company_ids: Sequence[str],
    deal_ids: Sequence[str],
) -> tuple[list[ContactDocument], list[CompanyDocument], list[DealDocument]]:
    async def load(collection: str, ids: Sequence[str]) -> list[dict[str, object]]:
        if not ids:
            return []
        return await store.collection(collection).find({"_id": {"$in": list(dict.fromkeys(ids))}})

    contacts = [ContactDocument.from_document(d) for d in await load("contacts", contact_ids)]
    companies = [CompanyDocument.from_document(d) for d in await load("companies", company_ids)]
    deals = [DealDocument.from_document(d) for d in await load("deals", deal_ids)]
    missing = {
        name: sorted(set(wanted) - {r.id for r in found})
        for name, wanted, found in (
            ("contact_ids", contact_ids, contacts),
            ("company_ids", company_ids, companies),
            ("deal_ids", deal_ids, deals),
        )
    }
    missing = {name: ids for name, ids in missing.items() if ids}
    if missing:
        raise UnknownRecordsError(missing)
    return contacts, companies, deals


async def associate_manually(
    store: WorkspaceStore,
    thread_id: str,
    contact_ids: Sequence[str],
    company_ids: Sequence[str],
    deal_ids: Sequence[str],
    *,
    actor: str,
    publish: Publish,
) -> ThreadDocument:
    """Link the thread to exactly these records, for good; announce it (`thread.associated`).

    Raises LookupError when the thread is missing, `UnknownRecordsError` (a LookupError)
    naming the ids that do not exist.
    """
    if await store.threads.find_one({"_id": thread_id}, projection={"_id": 1}) is None:
        raise LookupError(f"thread {thread_id} not found")
    contacts, companies, deals = await _existing(store, contact_ids, company_ids, deal_ids)
    reason = f"linked by {actor}"
    links = Links(
        contact_ids=tuple(c.id for c in contacts),
        company_ids=tuple(c.id for c in companies),
        deal_ids=tuple(d.id for d in deals),
        reasons=tuple(
            LinkReason(record_type=kind, record_id=record_id, reason=reason)
            for kind, ids in (
                ("contact", [c.id for c in contacts]),
                ("company", [c.id for c in companies]),
                ("deal", [d.id for d in deals]),
            )
            for record_id in ids
        ),
    )
    event = thread_associated_event(
        store.workspace_id, thread_id, links, manual=True, event_id=new_id()
    )
    updated = await store.threads.find_one_and_update(
        {"_id": thread_id},
        {
            "$set": {
                **links_update(links),
                "manually_linked": True,
                "manually_linked_by": actor,
                "manually_linked_at": utcnow(),
            },
            "$push": push([event]),
        },
    )
    if updated is None:
        raise LookupError(f"thread {thread_id} not found")
    await deliver(store.threads, thread_id, publish)
    return ThreadDocument.from_document(updated)


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.casefold())


def _domain_label(domain: str) -> str:
    parents = domain_and_parents(domain)
    registered = parents[-1] if parents else domain
    return registered.split(".", 1)[0]


SeenThreads = Callable[[Sequence[ThreadDocument]], Awaitable[dict[str, ThreadDocument]]]


async def _as_stored(threads: Sequence[ThreadDocument]) -> dict[str, ThreadDocument]:
    return {thread.id: thread for thread in threads}


async def suggestions(
    store: WorkspaceStore,
    thread: ThreadDocument,
    limit: int = 10,
    *,
    seen: SeenThreads = _as_stored,
    message_ids: Collection[str] | None = None,
) -> list[Suggestion]:
    """Records a person may want to link an unassigned thread to, strongest first.

    For a reader who may not see everything: `thread` as they see it, `message_ids` the ids
    of its messages they see, and `seen` gives other threads as they see them (leaving out
    those they may not see), so no suggestion quotes or rests on mail hidden from them.
    """
    owners = await mailbox_addresses(store, thread.mailbox_ids)
    counterparts = counterpart_addresses(thread.participants, owners)
    if not counterparts:
        return []
    found: dict[tuple[str, str], Suggestion] = {}

    def add(kind: RecordType, record_id: str, name: str, reason: str, score: int) -> None:
        key = (kind, record_id)
        if key not in found or found[key].score < score:
            found[key] = Suggestion(
                record_type=kind, record_id=record_id, name=name, reason=reason, score=score
            )

    async def names(collection: str, ids: set[str]) -> dict[str, str]:
        if not ids:
            return {}
        documents = await store.collection(collection).find(
            {"_id": {"$in": sorted(ids)}}, projection={"name": 1}
        )
        return {str(d["_id"]): str(d.get("name", "")) for d in documents}

    # Linked elsewhere: the same counterpart on other threads that carry links.
    stored = [
        ThreadDocument.from_document(d)
        for d in await store.threads.find(
            {"_id": {"$ne": thread.id}, "participants": {"$in": counterparts}},
            sort=[("last_message_at", -1)],
            limit=20,
        )
    ]
    as_seen = await seen(stored)
    others = [
        other
        for t in stored
        if (other := as_seen.get(t.id)) is not None and set(other.participants) & set(counterparts)
    ]
    record_names = (
        await names("contacts", {i for t in others for i in t.contact_ids})
        | await names("companies", {i for t in others for i in t.company_ids})
        | await names("deals", {i for t in others for i in t.deal_ids})
    )
    for other in others:
        shared = sorted(set(other.participants) & set(counterparts))
        named = f"thread \u201c{other.subject}\u201d" if other.subject else "a thread"
        where = f"{named} with {shared[0]} is linked to it"
        for record_id in other.contact_ids:
            add("contact", record_id, record_names.get(record_id, ""), where, 3)
        for record_id in other.company_ids:
            add("company", record_id, record_names.get(record_id, ""), where, 3)
        for record_id in other.deal_ids:
            add("deal", record_id, record_names.get(record_id, ""), where, 3)

    # Same display name.
    display_names: dict[str, str] = {}
    own: dict[str, object] = {"thread_id": thread.id}
    if message_ids is not None:
        own["_id"] = {"$in": sorted(message_ids)}
    for document in await store.messages.find(own, projection={"from": 1, "to": 1, "cc": 1}):
        written = [document.get("from"), *document.get("to", []), *document.get("cc", [])]
        for participant in (Address.model_validate(p) for p in written if p):
            if participant.address in counterparts and participant.name.strip():
                display_names[participant.name.strip().casefold()] = participant.address
    if display_names:
        for document in await store.contacts.find({"retracted_at": None}, projection={"name": 1}):
            name = str(document.get("name", ""))
            address = display_names.get(name.strip().casefold())
            if address:
                add("contact", str(document["_id"]), name, f"{address} writes as {name}", 2)

    # Same domain, and company names that match the domain.
    free_mail = free_mail_domains()
    domains = sorted({d for a in counterparts if (d := domain_of(a)) and d not in free_mail})
    if domains:
        colleagues = [
            ContactDocument.from_document(d)
            for d in await store.contacts.find(
                {
                    "retracted_at": None,
                    "$or": [{"emails": {"$regex": f"@{re.escape(d)}$"}} for d in domains],
                },
                limit=50,
            )
        ]
        company_ids = {c.company_id for c in colleagues if c.company_id}
        company_names = await names("companies", company_ids)
        for contact in colleagues:
            domain = next(d for e in contact.emails for d in domains if e.endswith(f"@{d}"))
            add("contact", contact.id, contact.name, f"a contact at {domain}", 2)
            if contact.company_id:
                add(
                    "company",
                    contact.company_id,
                    company_names.get(contact.company_id, ""),
                    f"company of {contact.name or contact.emails[0]}, a contact at {domain}",
                    2,
                )
        if company_ids:
            for document in await store.deals.find(
                {"status": "open", "company_id": {"$in": sorted(company_ids)}},
                projection={"name": 1, "company_id": 1},
            ):
                company_name = company_names.get(str(document["company_id"]), "")
                add(
                    "deal",
                    str(document["_id"]),
                    str(document.get("name", "")),
                    f"open deal of {company_name or 'the company'} of a contact at the same domain",
                    2,
                )
        labels = {_compact(_domain_label(d)): d for d in domains}
        labels = {label: d for label, d in labels.items() if len(label) >= 3}
        if labels:
            for document in await store.companies.find({}, projection={"name": 1}):
                name = str(document.get("name", ""))
                compact = _compact(name)
                for label, domain in labels.items():
                    if compact.startswith(label):
                        add("company", str(document["_id"]), name, f"its name matches {domain}", 1)

    ranked = sorted(found.values(), key=lambda s: (-s.score, s.record_type, s.name, s.record_id))
    return ranked[:limit]
