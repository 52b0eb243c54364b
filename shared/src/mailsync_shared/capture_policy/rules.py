"""Which participants of a message become contacts, and which rule said so.

Rules are checked in this order for each participant; the first that decides wins and its
name is recorded with the decision:

1. `invalid_address`: no domain to judge.
2. `owner_address`: the mailbox owner, and the owner of any other mailbox connected to
   the workspace, is never a contact of it. (So both copies of mail between two connected
   colleagues decide the same, whichever is handled first.)
3. `existing_contact`: an address already on a contact creates nothing new.
4. `blocked_address` / `blocked_domain`: the workspace's block list (`@domain` entries also
   block subdomains).
5. `policy_none`, `policy_sent_only`, `not_a_recipient`: the policy. `sent` captures the
   recipients (To, Cc, Bcc) of messages the owner sent; `sent_and_received` also every
   participant of messages the owner received.
6. `automated_message`: `Auto-Submitted` other than `no`, `List-Unsubscribe`, or
   `Precedence: bulk | list | junk` mark the whole message as machine mail.
7. `role_address`: noreply@, mailer-daemon@, postmaster@, notifications@ and the like.
8. `internal_domain`: the owner's domain (unless it is a free-mail domain) and the
   workspace's own domains, with their subdomains.
9. `free_mail_domain`: gmail.com and the other providers in `data/free_mail_domains.txt`
   (shipped with this package; one domain a line).
10. `unknown_company_domain`: with `known_company_domains_only`, a domain no company has.

An address that passes every rule is captured under the rule `policy_<policy>`.
"""

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib import resources

from mailsync_shared.contracts.mail import Address, MailMessage
from mailsync_shared.mail.addresses import domain_of, local_part, within_domains
from mailsync_shared.storage.capture_rules import CaptureOutcome, CaptureRulesDocument

AUTOMATED_PRECEDENCE = frozenset({"bulk", "list", "junk"})

ROLE_LOCAL_PARTS = frozenset(
    {
        "mailer-daemon",
        "postmaster",
        "notifications",
        "notification",
        "notify",
        "bounce",
        "bounces",
        "daemon",
        "autoreply",
        "auto-reply",
        "auto-confirm",
    }
)
# Local parts that are automated whatever follows them: noreply-billing@, no_reply.eu@, ...
_ROLE_PREFIX = re.compile(r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|bounces?[-+=._])")


@dataclass(frozen=True)
class Decision:
    outcome: CaptureOutcome
    rule: str


@dataclass(frozen=True)
class CaptureContext:
    """Everything the rules need besides the message, loaded by the caller."""

    rules: CaptureRulesDocument
    free_mail_domains: frozenset[str]
    workspace_domains: frozenset[str] = frozenset()
    company_domains: frozenset[str] = frozenset()
    existing_addresses: frozenset[str] = frozenset()
    mailbox_addresses: frozenset[str] = frozenset()
    blocked_addresses: frozenset[str] = field(init=False)
    blocked_domains: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        entries = [entry.strip().lower() for entry in self.rules.blocked if entry.strip()]
        domains = {entry.lstrip("@") for entry in entries if entry.startswith("@")}
        addresses = {entry for entry in entries if not entry.startswith("@")}
        object.__setattr__(self, "blocked_domains", frozenset(domains))
        object.__setattr__(self, "blocked_addresses", frozenset(addresses))


@cache
def free_mail_domains() -> frozenset[str]:
    """The free-mail domain list shipped with the package."""
    text = (
        resources.files("mailsync_shared.capture_policy")
        .joinpath("data/free_mail_domains.txt")
        .read_text()
    )
    return frozenset(
        line.strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


def is_role_address(address: str) -> bool:
    local = local_part(address).split("+", 1)[0]
    return local in ROLE_LOCAL_PARTS or _ROLE_PREFIX.match(local) is not None


def is_automated(message: MailMessage) -> bool:
    hints = message.automation
    auto_submitted = (hints.auto_submitted or "").strip().lower()
    precedence = (hints.precedence or "").strip().lower()
    return (
        (bool(auto_submitted) and auto_submitted != "no")
        or hints.list_unsubscribe
        or precedence in AUTOMATED_PRECEDENCE
    )


def internal_domains(message: MailMessage, context: CaptureContext) -> frozenset[str]:
    owner_domain = domain_of(message.owner_address)
    if owner_domain and owner_domain not in context.free_mail_domains:
        return context.workspace_domains | {owner_domain}
    return context.workspace_domains


def _recipients(message: MailMessage) -> set[str]:
    return {address.address for address in [*message.to, *message.cc, *message.bcc]}


def _policy_decision(message: MailMessage, address: str, policy: str) -> Decision | None:
    if policy == "none":
        return Decision("skipped", "policy_none")
    if message.direction == "received":
        return None if policy == "sent_and_received" else Decision("skipped", "policy_sent_only")
    if address not in _recipients(message):
        return Decision("skipped", "not_a_recipient")
    return None


def decide(message: MailMessage, address: str, context: CaptureContext) -> Decision:
    """The decision for one participant address (lower-cased) of `message`."""
    rules = context.rules
    domain = domain_of(address)
    if not domain:
        return Decision("skipped", "invalid_address")
    if address == message.owner_address.lower() or address in context.mailbox_addresses:
        return Decision("skipped", "owner_address")
    if address in context.existing_addresses:
        return Decision("existing", "existing_contact")
    if address in context.blocked_addresses:
        return Decision("skipped", "blocked_address")
    if within_domains(address, context.blocked_domains):
        return Decision("skipped", "blocked_domain")
    policy_decision = _policy_decision(message, address, rules.policy)
    if policy_decision is not None:
        return policy_decision
    if rules.exclude_automated and is_automated(message):
        return Decision("skipped", "automated_message")
    if rules.exclude_automated and is_role_address(address):
        return Decision("skipped", "role_address")
    if rules.exclude_internal and within_domains(address, internal_domains(message, context)):
        return Decision("skipped", "internal_domain")
    if rules.exclude_free_mail and domain in context.free_mail_domains:
        return Decision("skipped", "free_mail_domain")
    if rules.known_company_domains_only and not within_domains(address, context.company_domains):
        return Decision("skipped", "unknown_company_domain")
    return Decision("captured", f"policy_{rules.policy}")


def decide_all(message: MailMessage, context: CaptureContext) -> list[tuple[Address, Decision]]:
    """A decision for every participant of the message, sender first."""
    return [
        (participant, decide(message, participant.address.lower(), context))
        for participant in message.participants()
    ]


def display_name(participant: Address) -> str:
    """The participant's display name, unless it is empty or just an address again."""
    name = participant.name.strip().strip("\"'").strip()
    return "" if not name or "@" in name else name


def participant_domains(participants: Iterable[Address]) -> set[str]:
    return {domain for participant in participants if (domain := domain_of(participant.address))}
