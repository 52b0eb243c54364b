"""Capture's reads and writes: rules, contacts, companies and decisions of one workspace."""

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pymongo.errors import DuplicateKeyError

from mailsync_shared.clock import utcnow
from mailsync_shared.ids import stable_id
from mailsync_shared.mail.addresses import domain_and_parents
from mailsync_shared.storage.capture_rules import (
    CAPTURE_RULES_COLLECTION,
    CaptureDecisionDocument,
    CaptureRulesDocument,
)
from mailsync_shared.storage.documents import CompanyDocument, ContactDocument
from mailsync_shared.storage.mailbox_directory import DIRECTORY
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore


def captured_contact_id(workspace_id: str, address: str) -> str:
    """Capture creates at most one contact per address: its id is derived from the address."""
    return stable_id("captured-contact", workspace_id, address)


def captured_company_id(workspace_id: str, domain: str) -> str:
    """Capture creates at most one company per domain: its id is derived from the domain."""
    return stable_id("captured-company", workspace_id, domain)


def decision_id(workspace_id: str, message_id: str, address: str) -> str:
    return stable_id("capture-decision", workspace_id, message_id, address)


class CaptureRepository:
    def __init__(self, store: WorkspaceStore, system: SystemCollections) -> None:
        self._store = store
        self._system = system

    @property
    def store(self) -> WorkspaceStore:
        return self._store

    @property
    def workspace_id(self) -> str:
        return self._store.workspace_id

    async def rules(self) -> CaptureRulesDocument:
        document = await self._store.collection(CAPTURE_RULES_COLLECTION).find_one(
            {"_id": self.workspace_id}
        )
        if document is None:
            return CaptureRulesDocument(id=self.workspace_id, workspace_id=self.workspace_id)
        return CaptureRulesDocument.from_document(document)

    async def save_rules(self, rules: CaptureRulesDocument, actor: str) -> CaptureRulesDocument:
        saved = rules.model_copy(
            update={
                "id": self.workspace_id,
                "workspace_id": self.workspace_id,
                "updated_at": utcnow(),
                "updated_by": actor,
            }
        )
        fields = saved.to_document()
        fields.pop("_id")
        fields.pop("workspace_id")
        collection = self._store.collection(CAPTURE_RULES_COLLECTION)
        try:
            await collection.update_one({"_id": self.workspace_id}, {"$set": fields}, upsert=True)
        except DuplicateKeyError:
            await collection.update_one({"_id": self.workspace_id}, {"$set": fields})
        return saved

    async def workspace_domains(self) -> frozenset[str]:
        document = await self._system.workspaces.find_one(
            {"_id": self.workspace_id}, projection={"domains": 1}
        )
        domains: Iterable[Any] = (document or {}).get("domains") or []
        return frozenset(str(domain).lower() for domain in domains)

    async def mailbox_addresses(self, including: Iterable[str] = ()) -> dict[str, str]:
        """The owner address of every mailbox of the workspace, by mailbox id (read a moment
        ago, and again if one of `including` is missing: `MailboxDirectory`)."""
        entries = await DIRECTORY.entries(self._store, including=including)
        return {mailbox_id: entry.address for mailbox_id, entry in entries.items() if entry.address}

    async def contacts_with(self, addresses: Iterable[str]) -> dict[str, ContactDocument]:
        """Existing contacts (retracted ones included) by each of the addresses they carry."""
        wanted = sorted(set(addresses))
        if not wanted:
            return {}
        found: dict[str, ContactDocument] = {}
        for document in await self._store.contacts.find({"emails": {"$in": wanted}}):
            contact = ContactDocument.from_document(document)
            for email in contact.emails:
                if email in wanted:
                    previous = found.get(email)
                    # An active contact answers for the address before a retracted one.
                    if previous is None or (previous.retracted_at and not contact.retracted_at):
                        found[email] = contact
        return found

    async def captured_contacts(self) -> list[ContactDocument]:
        """Every contact capture created that is not retracted."""
        return [
            ContactDocument.from_document(d)
            for d in await self._store.contacts.find({"source": "capture", "retracted_at": None})
        ]

    async def contacts_in_use(self, contact_ids: Iterable[str]) -> dict[str, str]:
        """Of the given contacts, those a person relies on, with why: a deal or a manual link."""
        wanted = sorted(set(contact_ids))
        if not wanted:
            return {}
        in_use: dict[str, str] = {}
        for deal in await self._store.deals.find(
            {"contact_ids": {"$in": wanted}}, projection={"contact_ids": 1}
        ):
            for contact_id in deal.get("contact_ids", []):
                if contact_id in wanted:
                    in_use.setdefault(contact_id, "on_deal")
        for thread in await self._store.threads.find(
            {"contact_ids": {"$in": wanted}, "manually_linked": True},
            projection={"contact_ids": 1},
        ):
            for contact_id in thread.get("contact_ids", []):
                if contact_id in wanted:
                    in_use.setdefault(contact_id, "manually_linked")
        return in_use

    async def companies_by_domain(self, domains: Iterable[str]) -> dict[str, CompanyDocument]:
        """Companies owning any of the domains or their parent domains, by owned domain."""
        candidates = sorted({parent for domain in domains for parent in domain_and_parents(domain)})
        if not candidates:
            return {}
        found: dict[str, CompanyDocument] = {}
        for document in await self._store.companies.find({"domains": {"$in": candidates}}):
            company = CompanyDocument.from_document(document)
            for domain in company.domains:
                if domain in candidates:
                    found.setdefault(domain.lower(), company)
        return found

    async def all_company_domains(self) -> frozenset[str]:
        found = await self._store.companies.find({}, projection={"domains": 1})
        return frozenset(str(d).lower() for doc in found for d in doc.get("domains") or [])

    async def create_company(self, domain: str) -> CompanyDocument:
        """The company capture creates for a domain; the stored one when it exists already."""
        company = CompanyDocument(
            id=captured_company_id(self.workspace_id, domain),
            workspace_id=self.workspace_id,
            name=domain,
            domains=[domain],
            source="capture",
        )
        try:
            await self._store.companies.insert_one(company.to_document())
        except DuplicateKeyError:
            stored = await self._store.companies.find_one({"_id": company.id})
            if stored is None:
                raise
            return CompanyDocument.from_document(stored)
        return company

    async def create_contact(
        self, contact: ContactDocument, outbox: list[dict[str, Any]] | None = None
    ) -> ContactDocument:
        """Insert the contact; when its id is already taken, return the stored one instead."""
        document = contact.to_document()
        if outbox:
            document["outbox"] = outbox
        try:
            await self._store.contacts.insert_one(document)
        except DuplicateKeyError:
            stored = await self._store.contacts.find_one({"_id": contact.id})
            if stored is None:
                raise
            return ContactDocument.from_document(stored)
        return contact

    async def reinstate_contact(
        self,
        contact_id: str,
        message_id: str,
        company_id: str | None,
        push: Mapping[str, Any] | None = None,
    ) -> ContactDocument | None:
        """Make a retracted captured contact active again, as captured from `message_id`."""
        fields: dict[str, Any] = {"captured_message_id": message_id}
        if company_id is not None:
            fields["company_id"] = company_id
        update: dict[str, Any] = {
            "$set": fields,
            "$unset": {"retracted_at": "", "retracted_rule": ""},
        }
        if push:
            update["$push"] = dict(push)
        found = await self._store.contacts.find_one_and_update(
            {"_id": contact_id, "retracted_at": {"$ne": None}}, update
        )
        return None if found is None else ContactDocument.from_document(found)

    async def retract_contact(self, contact_id: str, rule: str, at: datetime) -> bool:
        result = await self._store.contacts.update_one(
            {"_id": contact_id, "source": "capture", "edited_at": None, "retracted_at": None},
            {"$set": {"retracted_at": at, "retracted_rule": rule}},
        )
        return result.modified_count == 1

    async def decisions_for(self, address: str, limit: int = 20) -> list[CaptureDecisionDocument]:
        """The latest decisions about an address, newest first."""
        found = await self._store.capture_decisions.find(
            {"address": address}, sort=[("at", -1)], limit=limit
        )
        return [CaptureDecisionDocument.from_document(d) for d in found]

    async def decision(self, decision_id_: str) -> CaptureDecisionDocument | None:
        found = await self._store.capture_decisions.find_one({"_id": decision_id_})
        return None if found is None else CaptureDecisionDocument.from_document(found)

    async def record_decisions(self, decisions: Iterable[CaptureDecisionDocument]) -> None:
        await store_decisions(self._store, list(decisions))


async def store_decisions(
    store: WorkspaceStore, decisions: Sequence[CaptureDecisionDocument]
) -> None:
    """Insert the decisions; the ones stored already are replaced by the new version.

    A decision is stored already when the message was decided before (a redelivery, another
    copy, or a rule review).
    """
    items = []
    for decision in decisions:
        document = decision.to_document()
        fields = {k: v for k, v in document.items() if k not in ("_id", "workspace_id")}
        items.append((document, {"$set": fields}))
    await store.capture_decisions.insert_or_update(items)
