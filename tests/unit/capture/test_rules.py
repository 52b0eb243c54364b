"""Capture rules: each rule decides the participants it is meant for, in order."""

from mailsync_shared.capture_policy.rules import (
    CaptureContext,
    decide,
    decide_all,
    display_name,
    free_mail_domains,
    is_role_address,
)
from mailsync_shared.contracts.mail import Address, AutomationHints, MailMessage
from mailsync_shared.storage.capture_rules import CaptureRulesDocument

OWNER = "owner@acme.test"


def message(
    *,
    direction: str = "sent",
    sender: str = OWNER,
    to: tuple[str, ...] = ("ann@client.test",),
    cc: tuple[str, ...] = (),
    automation: AutomationHints | None = None,
) -> MailMessage:
    return MailMessage.model_validate(
        {
            "mailbox_id": "mb1",
            "owner_address": OWNER,
            "direction": direction,
            "raw_id": "raw1",
            "size": 100,
            "message_id": "<m1@acme.test>",
            "from": {"address": sender, "name": "Sender"},
            "to": [{"address": a} for a in to],
            "cc": [{"address": a} for a in cc],
            "automation": (automation or AutomationHints()).model_dump(),
        }
    )


def context(**rules: object) -> CaptureContext:
    return CaptureContext(
        rules=CaptureRulesDocument.model_validate({"_id": "ws", "workspace_id": "ws", **rules}),
        free_mail_domains=free_mail_domains(),
        workspace_domains=frozenset({"acme-group.test"}),
        company_domains=frozenset({"client.test"}),
    )


def test_default_policy_captures_a_recipient_of_a_sent_message() -> None:
    decision = decide(message(), "ann@client.test", context())
    assert (decision.outcome, decision.rule) == ("captured", "policy_sent")


def test_default_policy_skips_people_who_write_to_the_owner() -> None:
    received = message(direction="received", sender="bob@client.test", to=(OWNER,))
    decision = decide(received, "bob@client.test", context())
    assert (decision.outcome, decision.rule) == ("skipped", "policy_sent_only")


def test_sent_and_received_captures_the_sender_of_a_received_message() -> None:
    received = message(direction="received", sender="bob@client.test", to=(OWNER,))
    decision = decide(received, "bob@client.test", context(policy="sent_and_received"))
    assert (decision.outcome, decision.rule) == ("captured", "policy_sent_and_received")


def test_policy_none_captures_nobody() -> None:
    assert decide(message(), "ann@client.test", context(policy="none")).rule == "policy_none"


def test_owner_is_never_captured_even_when_writing_to_themselves() -> None:
    to_self = message(to=(OWNER,))
    decision = decide(to_self, OWNER, context(policy="sent_and_received"))
    assert (decision.outcome, decision.rule) == ("skipped", "owner_address")


def test_sender_of_a_sent_message_who_is_not_the_owner_is_not_a_recipient() -> None:
    delegated = message(sender="assistant@client.test")
    decision = decide(delegated, "assistant@client.test", context())
    assert decision.rule == "not_a_recipient"


def test_existing_contact_is_reported_not_created() -> None:
    rules = context()
    existing = CaptureContext(
        rules=rules.rules,
        free_mail_domains=rules.free_mail_domains,
        existing_addresses=frozenset({"ann@client.test"}),
    )
    decision = decide(message(), "ann@client.test", existing)
    assert (decision.outcome, decision.rule) == ("existing", "existing_contact")


def test_block_list_blocks_addresses_and_domains_with_subdomains() -> None:
    rules = context(blocked=["Ann@Client.test", "@vendor.test"])
    sent = message(to=("ann@client.test", "x@eu.vendor.test", "carl@client.test"))
    decisions = {p.address: d.rule for p, d in decide_all(sent, rules)}
    assert decisions["ann@client.test"] == "blocked_address"
    assert decisions["x@eu.vendor.test"] == "blocked_domain"
    assert decisions["carl@client.test"] == "policy_sent"


def test_automated_messages_are_skipped() -> None:
    for hints in (
        AutomationHints(auto_submitted="auto-replied"),
        AutomationHints(list_unsubscribe=True),
        AutomationHints(precedence="Bulk"),
    ):
        decision = decide(message(automation=hints), "ann@client.test", context())
        assert decision.rule == "automated_message", hints


def test_auto_submitted_no_is_a_person() -> None:
    hints = AutomationHints(auto_submitted="no", precedence="normal")
    assert decide(message(automation=hints), "ann@client.test", context()).outcome == "captured"


def test_role_addresses_are_skipped() -> None:
    for address in (
        "noreply@client.test",
        "no-reply@client.test",
        "noreply-billing@client.test",
        "mailer-daemon@client.test",
        "postmaster@client.test",
        "notifications@client.test",
        "bounces+123@client.test",
    ):
        assert is_role_address(address), address
        assert decide(message(to=(address,)), address, context()).rule == "role_address"
    assert not is_role_address("sales@client.test")


def test_automation_rules_can_be_switched_off() -> None:
    rules = context(exclude_automated=False)
    hints = AutomationHints(list_unsubscribe=True)
    sent = message(to=("noreply@client.test",), automation=hints)
    assert decide(sent, "noreply@client.test", rules).outcome == "captured"


def test_internal_mail_is_skipped_for_owner_and_workspace_domains() -> None:
    sent = message(to=("colleague@acme.test", "cousin@eu.acme-group.test"))
    decisions = {p.address: d.rule for p, d in decide_all(sent, context())}
    assert decisions["colleague@acme.test"] == "internal_domain"
    assert decisions["cousin@eu.acme-group.test"] == "internal_domain"
    allowed = context(exclude_internal=False)
    assert decide(sent, "colleague@acme.test", allowed).outcome == "captured"


def test_free_mail_owner_domain_is_not_internal() -> None:
    gmail_owner = message(sender="owner@gmail.com", to=("friend@gmail.com",))
    gmail_owner = gmail_owner.model_copy(update={"owner_address": "owner@gmail.com"})
    rules = context(exclude_free_mail=False)
    assert decide(gmail_owner, "friend@gmail.com", rules).outcome == "captured"
    assert decide(gmail_owner, "friend@gmail.com", context()).rule == "free_mail_domain"


def test_free_mail_list_ships_with_the_package() -> None:
    domains = free_mail_domains()
    assert {"gmail.com", "outlook.com", "yahoo.com", "web.de"} <= domains
    assert not any(domain.startswith("#") for domain in domains)


def test_known_company_domains_only() -> None:
    rules = context(known_company_domains_only=True)
    sent = message(to=("ann@client.test", "zed@eu.client.test", "x@unknown.test"))
    decisions = {p.address: d.rule for p, d in decide_all(sent, rules)}
    assert decisions["ann@client.test"] == "policy_sent"
    assert decisions["zed@eu.client.test"] == "policy_sent"
    assert decisions["x@unknown.test"] == "unknown_company_domain"


def test_cc_recipients_are_captured_and_every_participant_gets_a_decision() -> None:
    sent = message(to=("ann@client.test",), cc=("bob@client.test",))
    decisions = decide_all(sent, context())
    assert [p.address for p, _ in decisions] == [OWNER, "ann@client.test", "bob@client.test"]
    assert [d.outcome for _, d in decisions] == ["skipped", "captured", "captured"]


def test_address_without_domain_is_invalid() -> None:
    assert decide(message(to=("undisclosed",)), "undisclosed", context()).rule == (
        "invalid_address"
    )


def test_display_name_ignores_addresses_and_quotes() -> None:
    assert display_name(Address(address="a@b.test", name=' "Ann Client" ')) == "Ann Client"
    assert display_name(Address(address="a@b.test", name="a@b.test")) == ""
    assert display_name(Address(address="a@b.test")) == ""


def test_owner_of_another_connected_mailbox_is_never_captured() -> None:
    to_colleague = message(to=("sam@acme.test",))
    rules = context(policy="sent_and_received")
    with_mailboxes = CaptureContext(
        rules=rules.rules,
        free_mail_domains=rules.free_mail_domains,
        mailbox_addresses=frozenset({OWNER, "sam@acme.test"}),
    )
    assert decide(to_colleague, "sam@acme.test", with_mailboxes).rule == "owner_address"
    assert decide(to_colleague, "sam@acme.test", rules).rule == "internal_domain"
