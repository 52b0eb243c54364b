"""Reviewing a rule change before and after it is made, and explaining single addresses.

**Preview** re-decides every participant of every logged message under the proposed rules,
as if no contact existed yet. An address *qualifies* when at least one message captures
it. Then:

- `would_add`: qualifying addresses no active contact carries (a retracted captured
  contact at that address would be reinstated; its id is given).
- `would_remove`: active captured contacts none of whose addresses qualify any more.
- `kept`: captured contacts that no longer qualify but stay, with why: `edited` (a person
  changed it), `on_deal` (a deal names it), `manually_linked` (a person linked a thread
  to it) or `no_logged_mail` (nothing logged to re-decide it on).

**Apply** saves the rules, then makes the preview true:

- adds: the contact is created (or reinstated) with its company as capture would, the
  decision for the qualifying message is re-recorded (`origin = "rules_applied"`, the old
  rule kept in `previous_rule`), `contact.captured` is published through the contact's
  outbox, and threads whose participants include the address gain the contact's links
  (`thread.associated`, same outbox mechanism on the thread).
- removals: the contact is *retracted*, never deleted: `retracted_at` and
  `retracted_rule` are set, decisions re-recorded. A retracted contact is not linked to
  new mail, existing thread links stay (links never shrink automatically), and it is
  reinstated when a later message or rule change captures it again. Contacts created
  through the api or an import are never retracted, nor are those in `kept`.

Only mail that was logged can be re-decided: messages skipped under a `client_only` scope
were never stored, and messages logged before the automation headers were stored count as
person-to-person mail.
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mailsync_shared.association.relink import link_threads_of
from mailsync_shared.capture_policy.capturing import capture_address, company_for
from mailsync_shared.capture_policy.repository import (
    CaptureRepository,
    captured_contact_id,
    decision_id,
)
from mailsync_shared.capture_policy.rules import (
    CaptureContext,
    decide,
    display_name,
    free_mail_domains,
)
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.mail import Address, MailMessage
from mailsync_shared.contracts.records import CapturedContactDetails, ContactCaptured
from mailsync_shared.ids import stable_id
from mailsync_shared.mail.addresses import domain_of
from mailsync_shared.outbox import Publish, deliver, entry
from mailsync_shared.storage.capture_rules import (
    CaptureDecisionDocument,
    CaptureOutcome,
    CaptureRulesDocument,
)
from mailsync_shared.storage.documents import ContactDocument, MessageDocument
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore

SOURCE = "/mailsync/capture"
_EARLIEST = datetime.min.replace(tzinfo=UTC)


class Outcome(BaseModel):
    """What the rules decide for one address over the logged mail."""

    model_config = ConfigDict(frozen=True)

    address: str
    name: str = ""
    decision: CaptureOutcome
    rule: str
    message_id: str = Field(description="The message that decided: the first that captures it.")
    mailbox_id: str
    at: datetime | None = None


class ContactChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    address: str
    name: str = ""
    rule: str = Field(description="The rule that decides under the proposed rules.")
    message_id: str | None = None
    contact_id: str | None = None
    kept_because: str | None = None


class RulePreview(BaseModel):
    model_config = ConfigDict(frozen=True)

    would_add: list[ContactChange]
    would_remove: list[ContactChange]
    kept: list[ContactChange]
    messages_evaluated: int


class RuleApplication(BaseModel):
    model_config = ConfigDict(frozen=True)

    rules: CaptureRulesDocument
    preview: RulePreview
    created_contact_ids: list[str]
    retracted_contact_ids: list[str]
    relinked_thread_ids: list[str]


def normalized(rules: CaptureRulesDocument, workspace_id: str) -> CaptureRulesDocument:
    blocked = list(dict.fromkeys(e.strip().lower() for e in rules.blocked if e.strip()))
    return rules.model_copy(
        update={"id": workspace_id, "workspace_id": workspace_id, "blocked": blocked}
    )


def _as_mail(message: MessageDocument, owners: dict[str, str]) -> MailMessage:
    mailbox_id = message.mailbox_ids[0] if message.mailbox_ids else ""
    owner = message.owner_address or owners.get(mailbox_id, "")
    if not owner and message.direction == "sent" and message.from_ is not None:
        owner = message.from_.address
    return MailMessage(
        mailbox_id=mailbox_id,
        owner_address=owner,
        direction=message.direction,
        raw_id=message.raw_id,
        size=0,
        message_id=message.message_id,
        subject=message.subject,
        date=message.date,
        from_=message.from_,
        to=message.to,
        cc=message.cc,
        bcc=message.bcc,
        automation=message.automation,
    )


async def _logged_mail(
    repository: CaptureRepository, filter_: dict[str, Any] | None = None
) -> AsyncIterator[MailMessage]:
    owners = await repository.mailbox_addresses()
    async for document in repository.store.messages.iterate(filter_, projection={"body_text": 0}):
        yield _as_mail(MessageDocument.from_document(document), owners)


def _moment(message: MailMessage) -> datetime:
    if message.date is None:
        return _EARLIEST
    return message.date if message.date.tzinfo else message.date.replace(tzinfo=UTC)


async def evaluate(
    repository: CaptureRepository,
    rules: CaptureRulesDocument,
    filter_: dict[str, Any] | None = None,
) -> tuple[dict[str, Outcome], int]:
    """Every participant address of the logged mail with its outcome; and the message count.

    Captured wins over skipped (the earliest capturing message decides); a skipped
    address is explained by its most recent message.
    """
    context = CaptureContext(
        rules=rules,
        free_mail_domains=free_mail_domains(),
        workspace_domains=await repository.workspace_domains(),
        company_domains=await repository.all_company_domains(),
        mailbox_addresses=frozenset((await repository.mailbox_addresses()).values()),
    )
    outcomes: dict[str, Outcome] = {}
    count = 0
    async for message in _logged_mail(repository, filter_):
        count += 1
        moment = _moment(message)
        for participant in message.participants():
            address = participant.address.lower()
            decision = decide(message, address, context)
            candidate = Outcome(
                address=address,
                name=participant.name,
                decision=decision.outcome,
                rule=decision.rule,
                message_id=message.message_id,
                mailbox_id=message.mailbox_id,
                at=message.date,
            )
            previous = outcomes.get(address)
            if previous is None or _better(candidate, moment, previous):
                outcomes[address] = candidate
    return outcomes, count


def _better(candidate: Outcome, moment: datetime, previous: Outcome) -> bool:
    previous_moment = (
        _EARLIEST
        if previous.at is None
        else previous.at
        if previous.at.tzinfo
        else previous.at.replace(tzinfo=UTC)
    )
    if (candidate.decision == "captured") != (previous.decision == "captured"):
        return candidate.decision == "captured"
    if candidate.decision == "captured":
        return moment < previous_moment
    return moment >= previous_moment


async def _preview(
    repository: CaptureRepository, rules: CaptureRulesDocument
) -> tuple[RulePreview, dict[str, Outcome]]:
    outcomes, count = await evaluate(repository, rules)
    qualifying = {a: o for a, o in outcomes.items() if o.decision == "captured"}
    carried = await repository.contacts_with(qualifying)
    would_add = [
        ContactChange(
            address=address,
            name=outcome.name,
            rule=outcome.rule,
            message_id=outcome.message_id,
            contact_id=carried[address].id if address in carried else None,
        )
        for address, outcome in sorted(qualifying.items())
        if address not in carried or carried[address].retracted_at is not None
    ]
    captured = [
        c
        for c in await repository.captured_contacts()
        if not any(e in qualifying for e in c.emails)
    ]
    in_use = await repository.contacts_in_use(c.id for c in captured)
    would_remove: list[ContactChange] = []
    kept: list[ContactChange] = []
    for contact in sorted(captured, key=lambda c: c.emails[0] if c.emails else c.id):
        address = contact.emails[0] if contact.emails else ""
        outcome = next((outcomes[e] for e in contact.emails if e in outcomes), None)
        reason = (
            "edited"
            if contact.edited_at is not None
            else in_use.get(contact.id, "no_logged_mail" if outcome is None else None)
        )
        change = ContactChange(
            address=address,
            name=contact.name,
            rule=outcome.rule if outcome is not None else "no_logged_mail",
            message_id=outcome.message_id if outcome is not None else None,
            contact_id=contact.id,
            kept_because=reason,
        )
        (kept if reason is not None else would_remove).append(change)
    return RulePreview(
        would_add=would_add, would_remove=would_remove, kept=kept, messages_evaluated=count
    ), outcomes


async def preview(
    store: WorkspaceStore, system: SystemCollections, new_rules: CaptureRulesDocument
) -> RulePreview:
    """Which contacts `new_rules` would add and which captured ones would no longer be."""
    repository = CaptureRepository(store, system)
    result, _ = await _preview(repository, normalized(new_rules, store.workspace_id))
    return result


def contact_captured_event(
    workspace_id: str, contact: ContactDocument, address: str, rule: str, mailbox_id: str
) -> ContactCaptured:
    event = ContactCaptured.create(
        source=SOURCE,
        workspace_id=workspace_id,
        subject=contact.id,
        data=CapturedContactDetails(
            contact_id=contact.id,
            address=address,
            name=contact.name,
            rule=rule,
            mailbox_id=mailbox_id,
            message_id=contact.captured_message_id or "",
        ),
    )
    event_id = stable_id("contact-captured", contact.id, "rules", contact.captured_message_id or "")
    return event.model_copy(update={"id": event_id})


async def _redecide(
    repository: CaptureRepository,
    outcome: Outcome,
    decision: CaptureOutcome,
    contact_id: str | None,
) -> None:
    record_id = decision_id(repository.workspace_id, outcome.message_id, outcome.address)
    before = await repository.decision(record_id)
    await repository.record_decisions(
        [
            CaptureDecisionDocument(
                id=record_id,
                workspace_id=repository.workspace_id,
                address=outcome.address,
                decision=decision,
                rule=outcome.rule,
                contact_id=contact_id,
                message_id=outcome.message_id,
                mailbox_id=outcome.mailbox_id,
                origin="rules_applied",
                previous_rule=before.rule if before is not None else None,
            )
        ]
    )


async def apply(
    store: WorkspaceStore,
    system: SystemCollections,
    new_rules: CaptureRulesDocument,
    *,
    actor: str,
    publish: Publish,
) -> RuleApplication:
    """Save `new_rules` and re-decide the logged mail under them (see the module docstring)."""
    repository = CaptureRepository(store, system)
    rules = normalized(new_rules, store.workspace_id)
    result, outcomes = await _preview(repository, rules)
    saved = await repository.save_rules(rules, actor)
    free_mail = free_mail_domains()

    created: list[str] = []
    for change in result.would_add:
        outcome = outcomes[change.address]
        companies = await repository.companies_by_domain([domain_of(change.address)])
        company = await company_for(repository, change.address, companies, saved, free_mail)
        existing = (await repository.contacts_with([change.address])).get(change.address)
        participant = Address(address=change.address, name=change.name)
        planned = ContactDocument(
            id=existing.id if existing else captured_contact_id(store.workspace_id, change.address),
            workspace_id=store.workspace_id,
            name=existing.name if existing else display_name(participant),
            emails=[change.address],
            captured_message_id=outcome.message_id,
        )
        event = contact_captured_event(
            store.workspace_id, planned, change.address, outcome.rule, outcome.mailbox_id
        )
        contact = await capture_address(
            repository, participant, outcome.message_id, company, existing, outbox=[entry(event)]
        )
        await _redecide(repository, outcome, "captured", contact.id)
        await deliver(store.contacts, contact.id, publish)
        created.append(contact.id)

    retracted: list[str] = []
    now = utcnow()
    for change in result.would_remove:
        if change.contact_id and await repository.retract_contact(
            change.contact_id, change.rule, now
        ):
            retracted.append(change.contact_id)
            if change.address in outcomes:
                await _redecide(repository, outcomes[change.address], "skipped", None)

    relinked = await link_threads_of(store, [c.address for c in result.would_add], publish)
    return RuleApplication(
        rules=saved,
        preview=result,
        created_contact_ids=created,
        retracted_contact_ids=retracted,
        relinked_thread_ids=relinked,
    )
