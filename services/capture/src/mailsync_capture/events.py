"""The events capture publishes, with ids that stay the same when a delivery is repeated."""

from mailsync_shared.capture_policy.capturing import CaptureResult, NewContact
from mailsync_shared.contracts.mail import (
    CapturedContact,
    CapturedMessage,
    MessageCaptured,
    MessageFetched,
)
from mailsync_shared.contracts.records import CapturedContactDetails, ContactCaptured
from mailsync_shared.ids import stable_id

SOURCE = "/mailsync/capture"


def contact_captured(fetched: MessageFetched, new: NewContact) -> ContactCaptured:
    event = ContactCaptured.create(
        source=SOURCE,
        workspace_id=fetched.workspaceid,
        subject=new.contact.id,
        data=CapturedContactDetails(
            contact_id=new.contact.id,
            address=new.address,
            name=new.contact.name,
            rule=new.rule,
            mailbox_id=fetched.data.mailbox_id,
            message_id=fetched.data.message_id,
        ),
    )
    event_id = stable_id("contact-captured", new.contact.id, fetched.data.message_id)
    return event.model_copy(update={"id": event_id})


def message_captured(fetched: MessageFetched, result: CaptureResult) -> MessageCaptured:
    event = MessageCaptured.create(
        source=SOURCE,
        workspace_id=fetched.workspaceid,
        subject=fetched.data.message_id,
        data=CapturedMessage(
            message=fetched.data,
            contacts=[
                CapturedContact(contact_id=new.contact.id, address=new.address)
                for new in result.new_contacts
            ],
        ),
    )
    return event.model_copy(update={"id": stable_id("message-captured", fetched.id)})
