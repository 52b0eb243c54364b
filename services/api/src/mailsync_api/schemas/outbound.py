"""What every way of sending (compose, reply, forward) accepts besides its own fields."""

from typing import Any

from pydantic import AwareDatetime, Field, model_validator

from mailsync_api.schemas.common import AddressIn, EmailAddress, Input, RecordId

MAX_ATTACHMENTS = 20
MAX_RECIPIENTS = 100


def _ascii_addresses(values: list[AddressIn], field: str) -> None:
    for index, value in enumerate(values):
        if not value.address.isascii():
            raise ValueError(
                f"{field}.{index}: {value.address} is not an ASCII address, which every SMTP "
                "server takes"
            )


class SendOptions(Input):
    from_address: EmailAddress | None = Field(
        default=None,
        description="From: the mailbox's own address (the default) or one of its verified aliases.",
    )
    attachments: list[RecordId] = Field(
        default_factory=list,
        max_length=MAX_ATTACHMENTS,
        description="Ids from `POST /v1/attachments`; their total size is capped (10 MiB).",
    )
    send_at: AwareDatetime | None = Field(
        default=None,
        description="Send no earlier than this (with a time zone); it must be in the future. "
        "Until then `POST /v1/send-requests/{id}/cancel` stops it.",
    )

    @model_validator(mode="after")
    def _deliverable_recipients(self) -> Any:
        recipients = 0
        for field in ("to", "cc", "bcc"):
            values = getattr(self, field, None)
            if isinstance(values, list):
                _ascii_addresses(values, field)
                recipients += len(values)
        if recipients > MAX_RECIPIENTS:
            raise ValueError(f"at most {MAX_RECIPIENTS} recipients in To, Cc and Bcc together")
        if len(set(self.attachments)) != len(self.attachments):
            raise ValueError("attachments: each id at most once")
        return self
