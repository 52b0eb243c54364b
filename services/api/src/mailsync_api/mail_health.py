"""What a mailbox's status says about its mail: defects counted, copies not stored listed."""

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailsync_shared.storage.scoped import WorkspaceStore
from mailsync_shared.storage.unstored_mail import UnstoredMail, unstored_mail


@dataclass
class MailHealth:
    defects: Counter[str] = field(default_factory=Counter)
    unstored_total: int = 0
    unstored: list[UnstoredMail] = field(default_factory=list)


async def mail_health(store: WorkspaceStore, mailbox_ids: Sequence[str]) -> dict[str, MailHealth]:
    """Per mailbox: how many logged messages carry each defect, and the mail not stored.

    Only messages with defects are read (they are few), each counted for every mailbox it was
    seen in.
    """
    health = {mailbox_id: MailHealth() for mailbox_id in mailbox_ids}
    if not health:
        return health
    query = {"mailbox_ids": {"$in": list(health)}, "defects.0": {"$exists": True}}
    async for document in store.messages.iterate(
        query, projection={"defects": 1, "mailbox_ids": 1}
    ):
        for mailbox_id in document.get("mailbox_ids") or []:
            if mailbox_id in health:
                health[mailbox_id].defects.update(set(document.get("defects") or []))
    for mailbox_id, entry in health.items():
        entry.unstored_total, entry.unstored = await unstored_mail(store, mailbox_id)
    return health
