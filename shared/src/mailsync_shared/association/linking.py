"""Which records a thread is linked to, and why.

- **Contacts**: every contact whose `emails` contain a participant address of the thread,
  except the addresses of the workspace mailboxes on the thread (the owners).
- **Companies**: every company whose `domains` contain a participant's domain (or a parent
  domain: `eu.client.test` belongs to `client.test`), and every matched contact's company.
- **Deals**, open ones only (`status == "open"`): a thread about a person is about that
  person's deals, so all open deals of the matched contacts are linked. Only when the
  contacts have none are the open deals of the matched companies linked (all of them: with
  several open deals nothing in the mail says which one it is about, and linking every
  candidate keeps the email visible on each, where a person can unlink it). A deal of a
  company is not linked when contact deals exist, since those are the more specific match.

Bulk and automated mail (`mailsync_shared.association.automated`) is linked narrowly: to the
matched contacts and their companies only, never to a company by domain alone nor to a
deal; each contact link says so.

Links only grow automatically: a record matched once stays linked when later messages no
longer match it, and a thread whose links a person set (`manually_linked`) keeps exactly
those links; new messages only add themselves to it.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailsync_shared.contracts.records import LinkReason
from mailsync_shared.mail.addresses import domain_and_parents, domain_of
from mailsync_shared.storage.documents import CompanyDocument, ContactDocument, DealDocument


@dataclass(frozen=True)
class Links:
    contact_ids: tuple[str, ...] = ()
    company_ids: tuple[str, ...] = ()
    deal_ids: tuple[str, ...] = ()
    reasons: tuple[LinkReason, ...] = ()

    def ids(self) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
        return frozenset(self.contact_ids), frozenset(self.company_ids), frozenset(self.deal_ids)

    def union(self, other: "Links") -> "Links":
        """These links plus the other's; a record keeps the first reason given for it."""
        reasons: dict[tuple[str, str], LinkReason] = {}
        for reason in (*self.reasons, *other.reasons):
            reasons.setdefault((reason.record_type, reason.record_id), reason)
        return Links(
            contact_ids=_ordered_union(self.contact_ids, other.contact_ids),
            company_ids=_ordered_union(self.company_ids, other.company_ids),
            deal_ids=_ordered_union(self.deal_ids, other.deal_ids),
            reasons=tuple(reasons.values()),
        )


def _ordered_union(first: Iterable[str], second: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *second]))


def _label(name: str, record_id: str) -> str:
    return name or record_id


def counterpart_addresses(participants: Iterable[str], owners: Iterable[str]) -> list[str]:
    """The thread's participants other than the mailbox owners, lower-cased."""
    owner_set = {owner.lower() for owner in owners}
    return [a for a in dict.fromkeys(p.lower() for p in participants) if a not in owner_set]


def candidate_domains(addresses: Iterable[str]) -> list[str]:
    return list(
        dict.fromkeys(
            parent for address in addresses for parent in domain_and_parents(domain_of(address))
        )
    )


def link_records(
    addresses: Sequence[str],
    contacts: Iterable[ContactDocument],
    companies: Iterable[CompanyDocument],
    deals: Iterable[DealDocument],
    *,
    automated: str | None = None,
) -> Links:
    """Links for counterpart `addresses`, given the records that might match them.

    `automated`: why the thread's mail is bulk or automated, which narrows the links.
    """
    wanted = set(addresses)
    narrowed = f"; {automated}, not linked to deals or to companies by domain" if automated else ""
    reasons: list[LinkReason] = []

    matched_contacts: dict[str, ContactDocument] = {}
    for contact in contacts:
        hit = next((email for email in contact.emails if email.lower() in wanted), None)
        if hit is None or contact.id in matched_contacts:
            continue
        matched_contacts[contact.id] = contact
        reasons.append(
            LinkReason(
                record_type="contact",
                record_id=contact.id,
                reason=f"{hit} is an address of contact {_label(contact.name, contact.id)}"
                + narrowed,
            )
        )

    domains = set() if automated else set(candidate_domains(addresses))
    company_of_contact = {c.company_id: c for c in matched_contacts.values() if c.company_id}
    matched_companies: dict[str, CompanyDocument] = {}
    for company in companies:
        domain = next((d for d in company.domains if d.lower() in domains), None)
        if domain is not None:
            reason = f"{domain} is a domain of company {_label(company.name, company.id)}"
        elif company.id in company_of_contact:
            contact = company_of_contact[company.id]
            reason = (
                f"contact {_label(contact.name, contact.id)} belongs to company "
                f"{_label(company.name, company.id)}"
            )
        else:
            continue
        if company.id not in matched_companies:
            matched_companies[company.id] = company
            reasons.append(LinkReason(record_type="company", record_id=company.id, reason=reason))

    open_deals = [] if automated else [deal for deal in deals if deal.status == "open"]
    linked_deals: list[tuple[DealDocument, str]] = []
    for deal in open_deals:
        party = next((c for c in deal.contact_ids if c in matched_contacts), None)
        if party is not None:
            person = matched_contacts[party]
            linked_deals.append(
                (
                    deal,
                    f"open deal {_label(deal.name, deal.id)} involves contact "
                    f"{_label(person.name, person.id)}",
                )
            )
    if not linked_deals:
        for deal in open_deals:
            if deal.company_id in matched_companies:
                company = matched_companies[deal.company_id]
                linked_deals.append(
                    (
                        deal,
                        f"open deal {_label(deal.name, deal.id)} belongs to company "
                        f"{_label(company.name, company.id)}",
                    )
                )
    seen_deals: set[str] = set()
    for deal, reason in linked_deals:
        if deal.id not in seen_deals:
            seen_deals.add(deal.id)
            reasons.append(LinkReason(record_type="deal", record_id=deal.id, reason=reason))

    return Links(
        contact_ids=tuple(matched_contacts),
        company_ids=tuple(matched_companies),
        deal_ids=tuple(dict.fromkeys(deal.id for deal, _ in linked_deals)),
        reasons=tuple(reasons),
    )
