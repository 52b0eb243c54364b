"""Applying a workspace's capture rules to one message: decide, create contacts, record why.

A captured address gets a contact named from its display name, linked to the company
owning its domain (or a parent domain). With `create_companies`, a domain no company owns
gets a company of its own (named after the domain; never a free-mail domain). A retracted
contact whose address is captured again is reinstated rather than created twice.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from mailsync_shared.capture_policy.repository import captured_contact_id, decision_id
from mailsync_shared.capture_policy.rules import (
    CaptureContext,
    Decision,
    decide_all,
    display_name,
    participant_domains,
)
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.mail import Address, MailMessage
from mailsync_shared.mail.addresses import domain_of, within_domains
from mailsync_shared.storage.capture_rules import CaptureDecisionDocument, CaptureRulesDocument
from mailsync_shared.storage.documents import CompanyDocument, ContactDocument


class CaptureSource(Protocol):
    """What capturing a message reads and writes of one workspace's data: `CaptureRepository`
    in the store, `BatchCaptureRepository` over a batch, or an in-memory stand-in."""

    @property
    def workspace_id(self) -> str: ...

    async def rules(self) -> CaptureRulesDocument: ...

    async def workspace_domains(self) -> frozenset[str]: ...

    async def mailbox_addresses(self, including: Iterable[str] = ()) -> dict[str, str]: ...

    async def contacts_with(self, addresses: Iterable[str]) -> dict[str, ContactDocument]: ...

    async def companies_by_domain(self, domains: Iterable[str]) -> dict[str, CompanyDocument]: ...

    async def create_company(self, domain: str) -> CompanyDocument: ...

    async def create_contact(
        self, contact: ContactDocument, outbox: list[dict[str, Any]] | None = None
    ) -> ContactDocument: ...

    async def reinstate_contact(
        self,
        contact_id: str,
        message_id: str,
        company_id: str | None,
        push: Mapping[str, Any] | None = None,
    ) -> ContactDocument | None: ...

    async def record_decisions(self, decisions: Iterable[CaptureDecisionDocument]) -> None: ...


@dataclass(frozen=True)
class NewContact:
    contact: ContactDocument
    address: str
    rule: str


@dataclass(frozen=True)
class CaptureResult:
    new_contacts: list[NewContact]
    decisions: list[CaptureDecisionDocument]


async def company_for(
    repository: CaptureSource,
    address: str,
    companies: dict[str, CompanyDocument],
    rules: CaptureRulesDocument,
    free_mail_domains: frozenset[str],
) -> CompanyDocument | None:
    """The company of a captured address, created by domain when the rules say so."""
    owned = within_domains(address, frozenset(companies))
    if owned is not None:
        return companies[owned]
    domain = domain_of(address)
    if not rules.create_companies or not domain or domain in free_mail_domains:
        return None
    company = await repository.create_company(domain)
    companies[domain] = company
    return company


async def capture_address(
    repository: CaptureSource,
    participant: Address,
    message_id: str,
    company: CompanyDocument | None,
    existing: ContactDocument | None,
    outbox: list[dict[str, Any]] | None = None,
) -> ContactDocument:
    """The contact for a captured address: reinstated when retracted, else created once."""
    address = participant.address.lower()
    company_id = company.id if company is not None else None
    if existing is not None and existing.retracted_at is not None:
        push: Mapping[str, Any] | None = {"outbox": {"$each": outbox}} if outbox else None
        reinstated = await repository.reinstate_contact(existing.id, message_id, company_id, push)
        if reinstated is not None:
            return reinstated
    return await repository.create_contact(
        ContactDocument(
            id=captured_contact_id(repository.workspace_id, address),
            workspace_id=repository.workspace_id,
            name=display_name(participant),
            emails=[address],
            company_id=company_id,
            source="capture",
            captured_message_id=message_id,
        ),
        outbox,
    )


async def capture_contacts(
    repository: CaptureSource, message: MailMessage, free_mail_domains: frozenset[str]
) -> CaptureResult:
    """Decide for every participant, create the captured contacts, store every decision.

    Safe to repeat: a contact created for this message on an earlier delivery is reported as
    new again (so its event is published even if the first delivery died before publishing),
    and never created twice, since a captured contact's id is derived from its address.
    """
    workspace_id = repository.workspace_id
    participants = message.participants()
    existing = await repository.contacts_with(p.address.lower() for p in participants)
    active = {a for a, contact in existing.items() if contact.retracted_at is None}
    created_earlier = {
        address
        for address in active
        if existing[address].captured_message_id == message.message_id
        and existing[address].id == captured_contact_id(workspace_id, address)
    }
    companies = await repository.companies_by_domain(participant_domains(participants))
    rules = await repository.rules()
    context = CaptureContext(
        rules=rules,
        free_mail_domains=free_mail_domains,
        workspace_domains=await repository.workspace_domains(),
        company_domains=frozenset(companies),
        existing_addresses=frozenset(active - created_earlier),
        mailbox_addresses=frozenset((await repository.mailbox_addresses()).values()),
    )

    new_contacts: list[NewContact] = []
    decisions: list[CaptureDecisionDocument] = []
    now = utcnow()
    for participant, decision in decide_all(message, context):
        address = participant.address.lower()
        contact_id = existing[address].id if address in existing else None
        if decision.outcome == "captured":
            company = await company_for(repository, address, companies, rules, free_mail_domains)
            contact = await capture_address(
                repository, participant, message.message_id, company, existing.get(address)
            )
            contact_id = contact.id
            if contact.captured_message_id == message.message_id:
                new_contacts.append(NewContact(contact, address, decision.rule))
            else:
                decision = Decision("existing", "existing_contact")
        decisions.append(
            CaptureDecisionDocument(
                id=decision_id(workspace_id, message.message_id, address),
                workspace_id=workspace_id,
                address=address,
                decision=decision.outcome,
                rule=decision.rule,
                contact_id=contact_id,
                message_id=message.message_id,
                mailbox_id=message.mailbox_id,
                at=now,
            )
        )
    await repository.record_decisions(decisions)
    return CaptureResult(new_contacts, decisions)
