"""In-memory stand-ins for what capture reads, writes and publishes through."""

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from mailsync_capture.batch_capture import CaptureWorkspace
from mailsync_shared.capture_policy.capturing import CaptureSource
from mailsync_shared.capture_policy.repository import captured_company_id
from mailsync_shared.contracts.envelope import Event
from mailsync_shared.mail.addresses import domain_and_parents
from mailsync_shared.storage.capture_rules import CaptureDecisionDocument, CaptureRulesDocument
from mailsync_shared.storage.client import Document
from mailsync_shared.storage.documents import CompanyDocument, ContactDocument, Visibility


class MemoryCaptureSource:
    """One workspace's rules, contacts, companies and decisions, with `CaptureRepository`'s
    answers; counts the calls it gets, and fails creating a contact for `broken` addresses."""

    def __init__(
        self,
        workspace_id: str,
        *,
        rules: CaptureRulesDocument | None = None,
        workspace_domains: Iterable[str] = (),
        mailbox_addresses: Mapping[str, str] | None = None,
        broken: Iterable[str] = (),
    ) -> None:
        self._workspace_id = workspace_id
        self._rules = rules or CaptureRulesDocument(id=workspace_id, workspace_id=workspace_id)
        self._workspace_domains = frozenset(workspace_domains)
        self._mailbox_addresses = dict(mailbox_addresses or {})
        self._broken = set(broken)
        self.contacts: dict[str, ContactDocument] = {}
        self.companies: dict[str, CompanyDocument] = {}
        self.decisions: dict[str, CaptureDecisionDocument] = {}
        self.calls: Counter[str] = Counter()

    @property
    def workspace_id(self) -> str:
        return self._workspace_id

    async def rules(self) -> CaptureRulesDocument:
        self.calls["rules"] += 1
        return self._rules

    async def workspace_domains(self) -> frozenset[str]:
        self.calls["workspace_domains"] += 1
        return self._workspace_domains

    async def mailbox_addresses(self, including: Iterable[str] = ()) -> dict[str, str]:
        self.calls["mailbox_addresses"] += 1
        return dict(self._mailbox_addresses)

    async def contacts_with(self, addresses: Iterable[str]) -> dict[str, ContactDocument]:
        self.calls["contacts_with"] += 1
        wanted = set(addresses)
        found: dict[str, ContactDocument] = {}
        for contact in self.contacts.values():
            for email in contact.emails:
                previous = found.get(email)
                if email in wanted and (
                    previous is None or (previous.retracted_at and not contact.retracted_at)
                ):
                    found[email] = contact
        return found

    async def companies_by_domain(self, domains: Iterable[str]) -> dict[str, CompanyDocument]:
        self.calls["companies_by_domain"] += 1
        candidates = {parent for domain in domains for parent in domain_and_parents(domain)}
        return {
            domain: company
            for company in self.companies.values()
            for domain in company.domains
            if domain in candidates
        }

    async def create_company(self, domain: str) -> CompanyDocument:
        self.calls["create_company"] += 1
        company_id = captured_company_id(self._workspace_id, domain)
        return self.companies.setdefault(
            company_id,
            CompanyDocument(
                id=company_id,
                workspace_id=self._workspace_id,
                name=domain,
                domains=[domain],
                source="capture",
            ),
        )

    async def create_contact(
        self, contact: ContactDocument, outbox: list[dict[str, Any]] | None = None
    ) -> ContactDocument:
        self.calls["create_contact"] += 1
        if set(contact.emails) & self._broken:
            raise ConnectionError(f"store unavailable for {contact.emails}")
        return self.contacts.setdefault(contact.id, contact)

    async def reinstate_contact(
        self,
        contact_id: str,
        message_id: str,
        company_id: str | None,
        push: Mapping[str, Any] | None = None,
    ) -> ContactDocument | None:
        self.calls["reinstate_contact"] += 1
        contact = self.contacts.get(contact_id)
        if contact is None or contact.retracted_at is None:
            return None
        fields: dict[str, Any] = {"captured_message_id": message_id, "retracted_at": None}
        if company_id is not None:
            fields["company_id"] = company_id
        self.contacts[contact_id] = contact.model_copy(update=fields)
        return self.contacts[contact_id]

    async def record_decisions(self, decisions: Iterable[CaptureDecisionDocument]) -> None:
        self.calls["record_decisions"] += 1
        self.decisions.update((decision.id, decision) for decision in decisions)

    def decided(self, message_id: str) -> dict[str, tuple[str, str]]:
        """The stored decisions about one message: (outcome, rule) by address."""
        return {
            d.address: (d.decision, d.rule)
            for d in self.decisions.values()
            if d.message_id == message_id
        }


class MemoryWorkspace:
    """A workspace's mailboxes (their stored flags) and capture data, in memory."""

    def __init__(
        self, source: MemoryCaptureSource, mailboxes: Mapping[str, Document] | None = None
    ) -> None:
        self.source = source
        self.mailboxes = dict(mailboxes or {})
        self.dropped_raw: list[str] = []

    async def mailbox_flags(self, mailbox_ids: Iterable[str]) -> Mapping[str, Document]:
        return {m: self.mailboxes[m] for m in mailbox_ids if m in self.mailboxes}

    async def drop_raw(self, raw_ids: Sequence[str]) -> None:
        self.dropped_raw += raw_ids

    def capture_source(self) -> CaptureSource:
        return self.source


class MemoryWorkspaces:
    """`BatchCapture`'s workspaces by id."""

    def __init__(self, *workspaces: MemoryWorkspace) -> None:
        self._workspaces = {w.source.workspace_id: w for w in workspaces}

    def __call__(self, workspace_id: str) -> CaptureWorkspace:
        return self._workspaces[workspace_id]


class MemoryPublisher:
    """Records what is published (with the level a single event is published at); fails
    publishing the event types in `failing`."""

    def __init__(self, failing: Iterable[str] = ()) -> None:
        self.published: list[tuple[Event, Visibility | None]] = []
        self.together: list[list[Event]] = []
        self._failing = set(failing)

    async def publish(self, event: Event, *, level: Visibility | None = None) -> None:
        if event.type in self._failing:
            raise ConnectionError(f"broker refused {event.type}")
        self.published.append((event, level))

    async def publish_together(self, events: Sequence[Event]) -> None:
        if any(event.type in self._failing for event in events):
            raise ConnectionError("broker refused the batch")
        self.together.append(list(events))

    def of_type(self, event_type: str) -> list[Event]:
        alone = [event for event, _ in self.published if event.type == event_type]
        batched = [event for group in self.together for event in group]
        return alone + [event for event in batched if event.type == event_type]
