"""Contact-capture rules, their preview and application, and explanations, over HTTP."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from mailsync_api.schemas.common import Input, domain_name, email_address, no_line_breaks
from mailsync_shared.capture_policy.explain import DecisionSummary, Explanation, describe
from mailsync_shared.capture_policy.review import ContactChange, RuleApplication, RulePreview
from mailsync_shared.storage.capture_rules import (
    CaptureOutcome,
    CaptureRulesDocument,
    CaptureRuleSwitches,
)
from mailsync_shared.storage.documents import CapturePolicy

KEPT_TEXT: dict[str, str] = {
    "edited": "a person edited the contact",
    "on_deal": "a deal names the contact",
    "manually_linked": "a person linked a thread to the contact",
    "no_logged_mail": "no logged message mentions it, so there is nothing to re-decide it on",
}


RULES_EXAMPLE: dict[str, Any] = {
    "policy": "sent",
    "known_company_domains_only": False,
    "exclude_free_mail": True,
    "exclude_automated": True,
    "exclude_internal": True,
    "create_companies": False,
    "blocked": [],
    "is_default": True,
    "updated_at": None,
    "updated_by": None,
}
PREVIEW_EXAMPLE: dict[str, Any] = {
    "would_add": [
        {
            "address": "ann@client.test",
            "name": "Ann Client",
            "rule": "policy_sent_and_received",
            "reason": "it exchanged mail with the mailbox owner (policy sent and received)",
            "message_id": "<1@client.test>",
            "contact_id": None,
            "kept_because": None,
        }
    ],
    "would_remove": [],
    "kept": [],
    "messages_evaluated": 12,
}


def block_entry(value: str) -> str:
    """An address (`ann@client.test`) or a domain with a leading `@` (`@client.test`)."""
    value = value.strip()
    if value.startswith("@"):
        return "@" + domain_name(value[1:])
    return email_address(value)


BlockEntry = Annotated[str, StringConstraints(max_length=320), AfterValidator(block_entry)]
LookupAddress = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=3, max_length=320),
    AfterValidator(no_line_breaks),
]


class CaptureRulesIn(Input, CaptureRuleSwitches):
    """The complete rules (`PUT` replaces them all); a field left out takes its default."""

    model_config = Input.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "policy": "sent_and_received",
                    "exclude_free_mail": True,
                    "exclude_automated": True,
                    "exclude_internal": True,
                    "known_company_domains_only": False,
                    "create_companies": True,
                    "blocked": ["@competitor.test", "press@client.test"],
                }
            ]
        }
    )

    blocked: list[BlockEntry] = Field(
        default_factory=list,
        max_length=1000,
        description="Addresses (`ann@client.test`) and domains (`@client.test`) never captured.",
    )

    def document(self, workspace_id: str) -> CaptureRulesDocument:
        return CaptureRulesDocument(id=workspace_id, workspace_id=workspace_id, **self.model_dump())


class CaptureRulesPatch(Input):
    """Only the fields given change; the others keep their saved values."""

    model_config = Input.model_config | ConfigDict(
        json_schema_extra={"examples": [{"policy": "sent_and_received"}]}
    )

    policy: CapturePolicy | None = None
    known_company_domains_only: bool | None = None
    exclude_free_mail: bool | None = None
    exclude_automated: bool | None = None
    exclude_internal: bool | None = None
    create_companies: bool | None = None
    blocked: list[BlockEntry] | None = Field(
        default=None, max_length=1000, description="Replaces the whole block list when given."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = sorted(str(name) for name, value in data.items() if value is None)
            if nulls:
                raise ValueError(f"leave out a field to keep it; null is not a value: {nulls}")
        return data

    def applied_to(self, current: CaptureRulesDocument) -> CaptureRulesDocument:
        """`current` with the given fields changed."""
        return current.model_copy(update=self.model_dump(exclude_unset=True))


class CaptureRulesOut(CaptureRuleSwitches):
    model_config = ConfigDict(json_schema_extra={"examples": [RULES_EXAMPLE]})

    blocked: list[str]
    is_default: bool = Field(description="True while the workspace never saved rules.")
    updated_at: datetime | None
    updated_by: str | None

    @classmethod
    def of(cls, rules: CaptureRulesDocument, *, is_default: bool) -> "CaptureRulesOut":
        return cls(
            **rules.model_dump(include=set(CaptureRuleSwitches.model_fields)),
            blocked=rules.blocked,
            is_default=is_default,
            updated_at=None if is_default else rules.updated_at,
            updated_by=None if is_default else rules.updated_by,
        )


class ContactChangeOut(BaseModel):
    address: str
    name: str
    rule: str = Field(description="The rule that decides under the proposed rules.")
    reason: str = Field(description="Why, in plain words.")
    message_id: str | None = Field(description="The logged message that decides (`Message-ID`).")
    contact_id: str | None = Field(description="The contact concerned, when there is one.")
    kept_because: str | None = Field(
        default=None,
        description="For `kept`: `edited`, `on_deal`, `manually_linked` or `no_logged_mail`.",
    )

    @classmethod
    def of(cls, change: ContactChange) -> "ContactChangeOut":
        reason = describe(change.rule, change.address)
        if change.kept_because is not None:
            kept = KEPT_TEXT.get(change.kept_because, change.kept_because)
            reason = f"no longer qualifies ({reason}) but stays: {kept}"
        return cls(
            address=change.address,
            name=change.name,
            rule=change.rule,
            reason=reason,
            message_id=change.message_id,
            contact_id=change.contact_id,
            kept_because=change.kept_because,
        )


class RulePreviewOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [PREVIEW_EXAMPLE]})

    would_add: list[ContactChangeOut] = Field(description="Addresses that would become contacts.")
    would_remove: list[ContactChangeOut] = Field(
        description="Captured contacts that would be retracted (never deleted)."
    )
    kept: list[ContactChangeOut] = Field(
        description="Captured contacts that no longer qualify but stay, with why."
    )
    messages_evaluated: int = Field(description="Logged messages the rules were tried on.")

    @classmethod
    def of(cls, preview: RulePreview) -> "RulePreviewOut":
        return cls(
            would_add=[ContactChangeOut.of(c) for c in preview.would_add],
            would_remove=[ContactChangeOut.of(c) for c in preview.would_remove],
            kept=[ContactChangeOut.of(c) for c in preview.kept],
            messages_evaluated=preview.messages_evaluated,
        )


class RuleApplicationOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "rules": RULES_EXAMPLE | {"is_default": False, "updated_by": "olga@acme.test"},
                    "changes": PREVIEW_EXAMPLE,
                    "created_contact_ids": ["3f1c0d9e2b7a4c55a1e0f6d2c8b9a7e4"],
                    "retracted_contact_ids": [],
                    "relinked_thread_ids": ["9a8b7c6d5e4f43210fedcba987654321"],
                }
            ]
        }
    )

    rules: CaptureRulesOut
    changes: RulePreviewOut = Field(description="What the rules changed, as previewed.")
    created_contact_ids: list[str] = Field(description="Contacts created or reinstated.")
    retracted_contact_ids: list[str]
    relinked_thread_ids: list[str] = Field(description="Threads that gained links.")

    @classmethod
    def of(cls, application: RuleApplication) -> "RuleApplicationOut":
        return cls(
            rules=CaptureRulesOut.of(application.rules, is_default=False),
            changes=RulePreviewOut.of(application.preview),
            created_contact_ids=application.created_contact_ids,
            retracted_contact_ids=application.retracted_contact_ids,
            relinked_thread_ids=application.relinked_thread_ids,
        )


class DecisionOut(BaseModel):
    decision: CaptureOutcome
    rule: str
    reason: str = Field(description="The rule in plain words, for this address.")
    message_id: str = Field(description="The message decided on (`Message-ID`).")
    origin: str = Field(
        description=(
            "`message`: decided when the message arrived; `rules_applied`: re-decided when a "
            "rule change was applied; `current_rules`: what the rules decide now."
        )
    )
    at: datetime | None

    @classmethod
    def of(cls, summary: DecisionSummary) -> "DecisionOut":
        return cls(
            decision=summary.decision,
            rule=summary.rule,
            reason=summary.reason,
            message_id=summary.message_id,
            origin=summary.origin,
            at=summary.at,
        )


class ExplanationOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "address": "bob@gmail.com",
                    "is_contact": False,
                    "contact_id": None,
                    "contact_source": None,
                    "retracted": False,
                    "summary": "bob@gmail.com is not a contact: gmail.com is a free-mail "
                    "provider, which says nothing about a company.",
                    "current": {
                        "decision": "skipped",
                        "rule": "free_mail_domain",
                        "reason": "gmail.com is a free-mail provider, which says nothing "
                        "about a company",
                        "message_id": "<2@gmail.com>",
                        "origin": "current_rules",
                        "at": "2025-03-01T09:00:00Z",
                    },
                    "decisions": [],
                }
            ]
        }
    )

    address: str
    is_contact: bool
    contact_id: str | None
    contact_source: str | None = Field(description="`capture`, `api` or `import`.")
    retracted: bool = Field(description="A rule change retracted the captured contact.")
    summary: str = Field(description="The answer in one or two sentences.")
    current: DecisionOut | None = Field(
        description="What the current rules decide over the logged mail."
    )
    decisions: list[DecisionOut] = Field(description="The stored decisions, latest first.")

    @classmethod
    def of(cls, explanation: Explanation) -> "ExplanationOut":
        return cls(
            address=explanation.address,
            is_contact=explanation.is_contact,
            contact_id=explanation.contact_id,
            contact_source=explanation.contact_source,
            retracted=explanation.retracted,
            summary=explanation.summary,
            current=DecisionOut.of(explanation.current) if explanation.current else None,
            decisions=[DecisionOut.of(d) for d in explanation.decisions],
        )
