"""Capture's reads and writes: rules, contacts, companies and decisions of one workspace."""

from collections.abc import Iterable
from typing import Any

from pymongo.errors import DuplicateKeyError

from mailsync_shared.ids import stable_id
from mailsync_shared.mail.addresses import domain_and_parents
from mailsync_shared.storage.capture_rules import (
    CAPTURE_RULES_COLLECTION,
    CaptureDecisionDocument,
    CaptureRulesDocument,
)
from mailsync_shared.storage.documents import CompanyDocument, ContactDocument
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore


def captured_contact_id(workspace_id: str, address: str) -> str:
    """Capture creates at most one contact per address: its id is derived from the address."""
    return stable_id("captured-contact", workspace_id, address)


class CaptureRepository:
    def __init__(self, store: WorkspaceStore, system: SystemCollections) -> None:
        self._store = store
        self._system = system

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

    async def workspace_domains(self) -> frozenset[str]:
        document = await self._system.workspaces.find_one(
            {"_id": self.workspace_id}, projection={"domains": 1}
        )
        domains: Iterable[Any] = (document or {}).get("domains") or []
        return frozenset(str(domain).lower() for domain in domains)

    async def contacts_with(self, addresses: Iterable[str]) -> dict[str, ContactDocument]:
        """Existing contacts by each of the given addresses they carry."""
        wanted = sorted(set(addresses))
        if not wanted:
            return {}
        found: dict[str, ContactDocument] = {}
        for document in await self._store.contacts.find({"emails": {"$in": wanted}}):
            contact = ContactDocument.from_document(document)
            for email in contact.emails:
                if email in wanted:
                    found.setdefault(email, contact)
        return found

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

    async def create_contact(self, contact: ContactDocument) -> ContactDocument:
        """Insert the contact; when its id is already taken, return the stored one instead."""
        try:
            await self._store.contacts.insert_one(contact.to_document())
        except DuplicateKeyError:
            stored = await self._store.contacts.find_one({"_id": contact.id})
            if stored is None:
                raise
            return ContactDocument.from_document(stored)
        return contact

    async def record_decisions(self, decisions: Iterable[CaptureDecisionDocument]) -> None:
        for decision in decisions:
            document = decision.to_document()
            document.pop("_id")
            document.pop("workspace_id")
            try:
                await self._store.capture_decisions.update_one(
                    {"_id": decision.id}, {"$set": document}, upsert=True
                )
            except DuplicateKeyError:
                # A concurrent delivery of the same message inserted it first.
                await self._store.capture_decisions.update_one(
                    {"_id": decision.id}, {"$set": document}
                )


def decision_id(workspace_id: str, message_id: str, address: str) -> str:
    return stable_id("capture-decision", workspace_id, message_id, address)
