"""Contact-capture rules of a workspace and the decisions made under them.

The api writes `CaptureRulesDocument` (collection `capture_rules`, `_id` = workspace id);
capture reads it, falling back to the defaults when a workspace has none, and records one
`CaptureDecisionDocument` per participant of every message it looks at (`capture_decisions`),
so "why is this address (not) a contact?" always has an answer.
"""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from mailsync_shared.clock import utcnow
from mailsync_shared.storage.documents import CapturePolicy, StoredDocument

CAPTURE_RULES_COLLECTION = "capture_rules"

CaptureOutcome = Literal["captured", "skipped", "existing"]


class CaptureRuleSwitches(BaseModel):
    """The switches of a workspace's capture rules, with the defaults a new workspace gets:
    what the api takes and shows, and what it stores."""

    policy: CapturePolicy = Field(
        default="sent",
        description=(
            "`none`: never create contacts; `sent`: people the mailbox owner writes to; "
            "`sent_and_received`: also people who write to the owner."
        ),
    )
    known_company_domains_only: bool = Field(
        default=False, description="Only capture addresses whose domain belongs to a company."
    )
    exclude_free_mail: bool = Field(
        default=True, description="Skip addresses at free-mail providers (gmail.com, ...)."
    )
    exclude_automated: bool = Field(
        default=True,
        description="Skip role senders (noreply@, ...) and bulk or auto-submitted messages.",
    )
    exclude_internal: bool = Field(
        default=True, description="Skip the owner's domain and the workspace's own domains."
    )
    create_companies: bool = Field(
        default=False,
        description=(
            "Create a company for the domain of a captured contact when no company has it "
            "(never for free-mail domains), and link the contact to it."
        ),
    )


class CaptureRulesDocument(StoredDocument, CaptureRuleSwitches):
    """A workspace's contact-capture rules; every field has the default a new workspace gets."""

    blocked: list[str] = Field(
        default_factory=list,
        description="Addresses (`ann@client.test`) and domains (`@client.test`) never captured.",
    )
    updated_at: datetime = Field(default_factory=utcnow)
    updated_by: str | None = Field(default=None, description="Who last changed the rules.")


class CaptureDecisionDocument(StoredDocument):
    """What capture decided for one participant of one message, and which rule decided it."""

    address: str
    decision: CaptureOutcome
    rule: str = Field(description="Name of the deciding rule, e.g. `free_mail_domain`.")
    contact_id: str | None = None
    message_id: str
    mailbox_id: str
    at: datetime = Field(default_factory=utcnow)
    origin: Literal["message", "rules_applied"] = Field(
        default="message",
        description="`rules_applied`: re-decided when a rule change was applied to logged mail.",
    )
    previous_rule: str | None = Field(
        default=None, description="The rule of the decision this one replaced, if any."
    )
