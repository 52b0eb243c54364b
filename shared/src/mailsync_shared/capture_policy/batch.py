"""Capture over a batch of messages of one workspace: shared look-ups, one write of decisions.

`CaptureBatch` wraps a `CaptureSource` (the store's `CaptureRepository`, or an in-memory
stand-in in tests) and answers the reads `capturing.capture_contacts` makes from what it
loaded once for the whole batch (rules, workspace domains, mailbox owners, the contacts and
companies of every participant), and keeps those answers current as contacts and companies
are created, so each message is decided exactly as if the batch's messages had been handled
one after another. Creations go straight to the source. Decisions are collected and written
together by `write_decisions`, in one call of the source's `record_decisions` (in the store,
one bulk write of upserts by `_id`: the latest decision per id, as one write after another
would leave it). `BatchCaptureRepository` is a `CaptureBatch` over the stored workspace.
"""

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mailsync_shared.capture_policy.capturing import CaptureSource
from mailsync_shared.capture_policy.repository import CaptureRepository
from mailsync_shared.capture_policy.rules import participant_domains
from mailsync_shared.contracts.mail import MailMessage
from mailsync_shared.mail.addresses import domain_and_parents
from mailsync_shared.storage.capture_rules import CaptureDecisionDocument, CaptureRulesDocument
from mailsync_shared.storage.documents import CompanyDocument, ContactDocument
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore


class CaptureBatch:
    """A `CaptureSource` that reads once per batch and writes decisions once per batch."""

    def __init__(self, source: CaptureSource) -> None:
        self._source = source
        self._rules: CaptureRulesDocument | None = None
        self._workspace_domains: frozenset[str] | None = None
        self._mailbox_addresses: dict[str, str] | None = None
        self._contacts: dict[str, ContactDocument] = {}
        self._contacts_known: set[str] = set()
        self._companies: dict[str, CompanyDocument] = {}
        self._companies_known: set[str] = set()
        self._decisions: dict[str, CaptureDecisionDocument] = {}

    @property
    def workspace_id(self) -> str:
        return self._source.workspace_id

    async def load(self, messages: Sequence[MailMessage]) -> None:
        """Read once, concurrently, what deciding every message of the batch needs."""
        participants = [p for message in messages for p in message.participants()]
        await asyncio.gather(
            self.contacts_with(p.address.lower() for p in participants),
            self.companies_by_domain(participant_domains(participants)),
            self.rules(),
            self.workspace_domains(),
            self.mailbox_addresses(message.mailbox_id for message in messages),
        )

    async def rules(self) -> CaptureRulesDocument:
        if self._rules is None:
            self._rules = await self._source.rules()
        return self._rules

    async def workspace_domains(self) -> frozenset[str]:
        if self._workspace_domains is None:
            self._workspace_domains = await self._source.workspace_domains()
        return self._workspace_domains

    async def mailbox_addresses(self, including: Iterable[str] = ()) -> dict[str, str]:
        if self._mailbox_addresses is None:
            self._mailbox_addresses = await self._source.mailbox_addresses(including)
        return dict(self._mailbox_addresses)

    async def contacts_with(self, addresses: Iterable[str]) -> dict[str, ContactDocument]:
        wanted = set(addresses)
        unknown = wanted - self._contacts_known
        if unknown:
            self._contacts.update(await self._source.contacts_with(unknown))
            self._contacts_known |= unknown
        return {a: self._contacts[a] for a in sorted(wanted) if a in self._contacts}

    def _remember_contact(self, contact: ContactDocument) -> None:
        for email in contact.emails:
            previous = self._contacts.get(email)
            # As in `contacts_with`: an active contact answers before a retracted one.
            if previous is None or previous.id == contact.id or not contact.retracted_at:
                self._contacts[email] = contact
            self._contacts_known.add(email)

    async def companies_by_domain(self, domains: Iterable[str]) -> dict[str, CompanyDocument]:
        candidates = {parent for domain in domains for parent in domain_and_parents(domain)}
        unknown = candidates - self._companies_known
        if unknown:
            for domain, company in (await self._source.companies_by_domain(unknown)).items():
                self._companies.setdefault(domain, company)
            self._companies_known |= unknown
        return {d: self._companies[d] for d in sorted(candidates) if d in self._companies}

    async def create_company(self, domain: str) -> CompanyDocument:
        company = await self._source.create_company(domain)
        for owned in company.domains:
            self._companies.setdefault(owned.lower(), company)
        self._companies[domain] = company
        self._companies_known.add(domain)
        return company

    async def create_contact(
        self, contact: ContactDocument, outbox: list[dict[str, Any]] | None = None
    ) -> ContactDocument:
        created = await self._source.create_contact(contact, outbox)
        self._remember_contact(created)
        return created

    async def reinstate_contact(
        self,
        contact_id: str,
        message_id: str,
        company_id: str | None,
        push: Mapping[str, Any] | None = None,
    ) -> ContactDocument | None:
        reinstated = await self._source.reinstate_contact(contact_id, message_id, company_id, push)
        if reinstated is not None:
            self._remember_contact(reinstated)
        return reinstated

    async def record_decisions(self, decisions: Iterable[CaptureDecisionDocument]) -> None:
        for decision in decisions:
            self._decisions.pop(decision.id, None)  # a later decision replaces, in its place
            self._decisions[decision.id] = decision

    async def write_decisions(self) -> None:
        """Record the decisions collected so far, together."""
        decisions, self._decisions = list(self._decisions.values()), {}
        await self._source.record_decisions(decisions)


class BatchCaptureRepository(CaptureBatch):
    """`CaptureBatch` over a workspace's stored capture data."""

    def __init__(self, store: WorkspaceStore, system: SystemCollections) -> None:
        super().__init__(CaptureRepository(store, system))
