"""Messages as capture hands them to associate: header facts published, raw bytes stored."""

from email.message import EmailMessage

from mailsync_shared.contracts.mail import CapturedMessage, MailMessage, MessageCaptured
from mailsync_shared.storage.raw_messages import store_raw
from mailsync_shared.storage.scoped import WorkspaceStore

OWNER = "owner@acme.test"
MAILBOX_ID = "mb-owner"


async def stored_mail(
    store: WorkspaceStore,
    email: EmailMessage,
    *,
    direction: str = "received",
    folder: str = "INBOX",
    uid: int = 1,
    with_source: bool = True,
) -> MailMessage:
    """The header facts ingest would publish for `email`, its bytes in the raw store."""
    raw = email.as_bytes()
    raw_id = await store_raw(store, raw)

    def addresses(header: str) -> list[dict[str, str]]:
        value = email.get(header)
        return (
            [{"address": a.addr_spec.lower(), "name": a.display_name} for a in value.addresses]
            if value
            else []
        )

    source = {
        "mailbox_id": MAILBOX_ID,
        "folder": folder,
        "folder_role": "sent" if folder == "Sent" else "inbox",
        "uidvalidity": 1,
        "uid": uid,
    }
    return MailMessage.model_validate(
        {
            "mailbox_id": MAILBOX_ID,
            "owner_address": OWNER,
            "direction": direction,
            "source": source if with_source else None,
            "raw_id": raw_id,
            "size": len(raw),
            "message_id": email["Message-ID"],
            "in_reply_to": str(email.get("In-Reply-To", "")).split(),
            "references": str(email.get("References", "")).split(),
            "subject": email["Subject"],
            "date": email["Date"].datetime,
            "from": addresses("From")[0],
            "to": addresses("To"),
            "cc": addresses("Cc"),
            "bcc": addresses("Bcc"),
        }
    )


def captured(workspace_id: str, message: MailMessage) -> MessageCaptured:
    return MessageCaptured.create(
        source="/test", workspace_id=workspace_id, data=CapturedMessage(message=message)
    )
