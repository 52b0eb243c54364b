"""A thread's links set by a person, suggestions for them, privacy, skipped mail, over HTTP."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from mailsync_api.schemas.common import Input, RecordId, unique
from mailsync_api.schemas.threads import LinkOut
from mailsync_shared.association.manual import Suggestion
from mailsync_shared.storage.documents import ThreadDocument

LinkIds = Annotated[list[RecordId], AfterValidator(unique)]


class ThreadLinksIn(Input):
    """Exactly the records the thread is about; empty lists unassign it."""

    model_config = Input.model_config | ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "contact_ids": ["3f1c0d9e2b7a4c55a1e0f6d2c8b9a7e4"],
                    "company_ids": ["0b1c2d3e4f5a46b7c8d9e0f1a2b3c4d5"],
                    "deal_ids": [],
                }
            ]
        }
    )

    contact_ids: LinkIds = Field(default_factory=list, max_length=100)
    company_ids: LinkIds = Field(default_factory=list, max_length=100)
    deal_ids: LinkIds = Field(default_factory=list, max_length=100)


class ThreadLinksOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "thread_id": "9a8b7c6d5e4f43210fedcba987654321",
                    "contact_ids": ["3f1c0d9e2b7a4c55a1e0f6d2c8b9a7e4"],
                    "company_ids": [],
                    "deal_ids": [],
                    "links": [
                        {
                            "record_type": "contact",
                            "record_id": "3f1c0d9e2b7a4c55a1e0f6d2c8b9a7e4",
                            "reason": "linked by olga@acme.test",
                        }
                    ],
                    "manually_linked": True,
                    "manually_linked_by": "olga@acme.test",
                    "manually_linked_at": "2025-03-01T09:00:00Z",
                }
            ]
        }
    )

    thread_id: str
    contact_ids: list[str]
    company_ids: list[str]
    deal_ids: list[str]
    links: list[LinkOut] = Field(description="Why the thread is linked to each record.")
    manually_linked: bool = Field(
        description="A person set these links; later mail and rule changes keep them."
    )
    manually_linked_by: str | None
    manually_linked_at: datetime | None

    @classmethod
    def of(cls, thread: ThreadDocument) -> "ThreadLinksOut":
        return cls(
            thread_id=thread.id,
            contact_ids=thread.contact_ids,
            company_ids=thread.company_ids,
            deal_ids=thread.deal_ids,
            links=[LinkOut(**reason.model_dump()) for reason in thread.link_reasons],
            manually_linked=thread.manually_linked,
            manually_linked_by=thread.manually_linked_by,
            manually_linked_at=thread.manually_linked_at,
        )


class SuggestionOut(BaseModel):
    record_type: Literal["contact", "company", "deal"]
    record_id: str
    name: str
    reason: str = Field(description="Why this record might be what the thread is about.")
    score: int = Field(description="3 strongest (linked elsewhere) to 1 weakest (name match).")

    @classmethod
    def of(cls, suggestion: Suggestion) -> "SuggestionOut":
        return cls(**suggestion.model_dump())


class SuggestionsOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "thread_id": "9a8b7c6d5e4f43210fedcba987654321",
                    "assigned": False,
                    "suggestions": [
                        {
                            "record_type": "contact",
                            "record_id": "3f1c0d9e2b7a4c55a1e0f6d2c8b9a7e4",
                            "name": "Ann Client",
                            "reason": "ann.private@gmail.com writes as Ann Client",
                            "score": 2,
                        }
                    ],
                }
            ]
        }
    )

    thread_id: str
    assigned: bool = Field(description="The thread is already linked to some record.")
    suggestions: list[SuggestionOut] = Field(description="Strongest first.")


class ThreadPrivacyOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"thread_id": "9a8b7c6d5e4f43210fedcba987654321", "private": True}]
        }
    )

    thread_id: str
    private: bool = Field(
        description="Hidden from everyone but the owners of the mailboxes it was seen in."
    )


class SkippedMailOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "mailbox_id": "5e4f43210fedcba9876543219a8b7c6d",
                    "scope": "client_only",
                    "skipped_unmatched": 42,
                }
            ]
        }
    )

    mailbox_id: str
    scope: Literal["all", "client_only"]
    skipped_unmatched: int | None = Field(
        description=(
            "Messages of a client-only mailbox that matched no record and were not stored "
            "(counted by a hash of their `Message-ID`; nothing else is kept); null for a "
            "caller the mailbox shares nothing with."
        )
    )
