"""Why an address is, or is not, a contact: its record, its decisions and the current rules."""

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mailsync_shared.capture_policy.repository import CaptureRepository
from mailsync_shared.capture_policy.review import Outcome, evaluate
from mailsync_shared.mail.addresses import domain_of
from mailsync_shared.storage.capture_rules import CaptureDecisionDocument, CaptureOutcome
from mailsync_shared.storage.documents import ContactDocument
from mailsync_shared.storage.scoped import SystemCollections, WorkspaceStore

RULE_TEXT: dict[str, str] = {
    "invalid_address": "the address has no domain",
    "owner_address": "it is the address of a connected mailbox's owner",
    "existing_contact": "a contact already has this address",
    "blocked_address": "the address is on the workspace's block list",
    "blocked_domain": "its domain is on the workspace's block list",
    "policy_none": "the workspace captures no contacts (policy none)",
    "policy_sent_only": (
        "it only wrote to the mailbox owner, and the workspace captures only people the "
        "owner writes to (policy sent)"
    ),
    "not_a_recipient": "it was not a recipient of the owner's message",
    "automated_message": (
        "the message was sent by a machine (Auto-Submitted, List-Unsubscribe or Precedence: bulk)"
    ),
    "role_address": "it is a role or automated address (noreply@, mailer-daemon@, ...)",
    "internal_domain": "it is at one of the workspace's own domains (internal mail)",
    "free_mail_domain": "{domain} is a free-mail provider, which says nothing about a company",
    "unknown_company_domain": (
        "only domains of known companies are captured, and no company has {domain}"
    ),
    "policy_sent": "the mailbox owner wrote to it (policy sent)",
    "policy_sent_and_received": (
        "it exchanged mail with the mailbox owner (policy sent and received)"
    ),
    "no_logged_mail": "no logged message mentions it",
}


def describe(rule: str, address: str) -> str:
    """The rule in plain words, for this address."""
    text = RULE_TEXT.get(rule, f"rule {rule}")
    return text.format(domain=domain_of(address) or address)


class DecisionSummary(BaseModel):
    model_config = ConfigDict(frozen=True)

    decision: CaptureOutcome
    rule: str
    reason: str
    message_id: str
    origin: str = Field(description="`message`, `rules_applied` or `current_rules`.")
    at: datetime | None = Field(default=None, description="When decided (current: mail date).")


class Explanation(BaseModel):
    model_config = ConfigDict(frozen=True)

    address: str
    is_contact: bool
    contact_id: str | None = None
    contact_source: str | None = None
    retracted: bool = False
    decisions: list[DecisionSummary] = Field(description="Latest decisions first.")
    current: DecisionSummary | None = Field(
        default=None, description="What the current rules decide over the logged mail."
    )
    summary: str = Field(description="The answer in one or two sentences.")


def _summary(
    address: str, contact: ContactDocument | None, current: Outcome | None, latest: str | None
) -> str:
    if contact is not None and contact.retracted_at is None:
        if contact.source == "capture":
            rule = current.rule if current and current.decision == "captured" else latest
            why = f": {describe(rule, address)}" if rule else ""
            return f"{address} is a contact, captured from mail{why}."
        return f"{address} is a contact, added through the {contact.source}."
    if contact is not None:
        rule = contact.retracted_rule or "no_logged_mail"
        return (
            f"{address} is no longer a contact: a rule change retracted it because "
            f"{describe(rule, address)}."
        )
    if current is None:
        if latest is None:
            return f"{address} is not a contact: no logged message mentions it."
        return f"{address} is not a contact: {describe(latest, address)}."
    if current.decision == "captured":
        return (
            f"{address} is not a contact yet, but the current rules would capture it "
            f"({describe(current.rule, address)}); applying the rules adds it."
        )
    return f"{address} is not a contact: {describe(current.rule, address)}."


DecisionFilter = Callable[
    [Sequence[CaptureDecisionDocument]], Awaitable[list[CaptureDecisionDocument]]
]


def mentions_of(address: str) -> dict[str, Any]:
    """Logged messages with `address` among their participants, Bcc included."""
    return {
        "$or": [
            {"from.address": address},
            {"to.address": address},
            {"cc.address": address},
            {"bcc.address": address},
        ]
    }


async def explain(
    store: WorkspaceStore,
    system: SystemCollections,
    address: str,
    *,
    mentions: Mapping[str, Any] | None = None,
    shown: DecisionFilter | None = None,
) -> Explanation:
    """Why `address` is (not) a contact, in plain words, with the decisions behind it.

    For a reader who may not see all mail: `mentions`, the messages they may see mentioning
    the address (instead of `mentions_of`), and `shown`, which leaves out the decisions about
    messages they may not see.
    """
    address = address.strip().lower()
    repository = CaptureRepository(store, system)
    contact = (await repository.contacts_with([address])).get(address)
    decisions = await repository.decisions_for(address)
    if shown is not None:
        decisions = await shown(decisions)
    if mentions is None:
        mentions = mentions_of(address)
    outcomes, _ = await evaluate(repository, await repository.rules(), dict(mentions))
    current = outcomes.get(address)
    return Explanation(
        address=address,
        is_contact=contact is not None and contact.retracted_at is None,
        contact_id=contact.id if contact else None,
        contact_source=contact.source if contact else None,
        retracted=contact is not None and contact.retracted_at is not None,
        decisions=[
            DecisionSummary(
                decision=d.decision,
                rule=d.rule,
                reason=describe(d.rule, address),
                message_id=d.message_id,
                origin=d.origin,
                at=d.at,
            )
            for d in decisions
        ],
        current=(
            DecisionSummary(
                decision=current.decision,
                rule=current.rule,
                reason=describe(current.rule, address),
                message_id=current.message_id,
                origin="current_rules",
                at=current.at,
            )
            if current is not None
            else None
        ),
        summary=_summary(address, contact, current, decisions[0].rule if decisions else None),
    )
