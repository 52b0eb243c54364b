"""Mailboxes: what the api tells ingest about the mailboxes it may lease."""

from typing import Literal

from pydantic import Field

from mailsync_shared.contracts.envelope import Contract, Event

ClaimableBecause = Literal["connected", "approved", "resync"]


class ClaimableMailbox(Contract):
    mailbox_id: str
    because: ClaimableBecause = Field(
        description=(
            "What made it claimable: `connected`, its address `approved` by an admin, or a "
            "`resync` that handed its lease back."
        )
    )


class MailboxClaimable(Event):
    """A mailbox became claimable (api -> ingest): the workers of its pool look for unleased
    mailboxes at once instead of at their next periodic claim. A hint only: the periodic
    claim finds the mailbox all the same."""

    type: Literal["mailsync.mailbox.claimable.v1"] = "mailsync.mailbox.claimable.v1"
    data: ClaimableMailbox
