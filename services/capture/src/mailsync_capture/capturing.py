"""Applying a workspace's capture rules to one message: decide, create contacts, record why."""

from dataclasses import dataclass

from mailsync_capture.repository import CaptureRepository, captured_contact_id, decision_id
from mailsync_capture.rules import (
    CaptureContext,
    Decision,
    decide_all,
    display_name,
    participant_domains,
)
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.mail import MailMessage
from mailsync_shared.mail.addresses import within_domains
from mailsync_shared.storage.capture_rules import CaptureDecisionDocument
from mailsync_shared.storage.documents import ContactDocument


@dataclass(frozen=True)
class NewContact:
    contact: ContactDocument
    address: str
    rule: str


@dataclass(frozen=True)
class CaptureResult:
    new_contacts: list[NewContact]
    decisions: list[CaptureDecisionDocument]


async def capture_contacts(
    repository: CaptureRepository, message: MailMessage, free_mail_domains: frozenset[str]
) -> CaptureResult:
    """Decide for every participant, create the captured contacts, store every decision.

    Safe to repeat: a contact created for this message on an earlier delivery is reported as
    new again (so its event is published even if the first delivery died before publishing),
    and never created twice, since a captured contact's id is derived from its address.
    """
    workspace_id = repository.workspace_id
    participants = message.participants()
    existing = await repository.contacts_with(p.address.lower() for p in participants)
    created_earlier = {
        address
        for address, contact in existing.items()
        if contact.captured_message_id == message.message_id
        and contact.id == captured_contact_id(workspace_id, address)
    }
    companies = await repository.companies_by_domain(participant_domains(participants))
    context = CaptureContext(
        rules=await repository.rules(),
        free_mail_domains=free_mail_domains,
        workspace_domains=await repository.workspace_domains(),
        company_domains=frozenset(companies),
        existing_addresses=frozenset(existing) - created_earlier,
    )

    new_contacts: list[NewContact] = []
    decisions: list[CaptureDecisionDocument] = []
    now = utcnow()
    for participant, decision in decide_all(message, context):
        address = participant.address.lower()
        contact_id = existing[address].id if address in existing else None
        if decision.outcome == "captured":
            company_domain = within_domains(address, context.company_domains)
            contact = await repository.create_contact(
                ContactDocument(
                    id=captured_contact_id(workspace_id, address),
                    workspace_id=workspace_id,
                    name=display_name(participant),
                    emails=[address],
                    company_id=companies[company_domain].id if company_domain else None,
                    source="capture",
                    captured_message_id=message.message_id,
                )
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
