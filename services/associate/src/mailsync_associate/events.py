"""The public events associate publishes, with ids that stay the same on a repeated delivery."""

from mailsync_associate.logbook import Logged
from mailsync_shared.contracts.records import (
    AssociatedThread,
    EmailLogged,
    LoggedEmail,
    ThreadAssociated,
)
from mailsync_shared.ids import stable_id

SOURCE = "/mailsync/associate"


def email_logged(workspace_id: str, logged: Logged) -> EmailLogged:
    stored = logged.stored
    event = EmailLogged.create(
        source=SOURCE,
        workspace_id=workspace_id,
        subject=stored.id,
        data=LoggedEmail(
            email_id=stored.id,
            thread_id=logged.thread.id,
            mailbox_id=stored.mailbox_ids[0] if stored.mailbox_ids else logged.message.mailbox_id,
            message_id=stored.message_id,
            direction=stored.direction,
            subject=stored.subject,
            date=stored.date,
            participants=logged.message.participants(bcc=False),
        ),
    )
    return event.model_copy(
        update={"id": stable_id("email-logged", workspace_id, stored.message_id)}
    )


def thread_associated(workspace_id: str, logged: Logged) -> ThreadAssociated:
    thread = logged.thread
    event = ThreadAssociated.create(
        source=SOURCE,
        workspace_id=workspace_id,
        subject=thread.id,
        data=AssociatedThread(
            thread_id=thread.id,
            contact_ids=thread.contact_ids,
            company_ids=thread.company_ids,
            deal_ids=thread.deal_ids,
            reasons=thread.link_reasons,
            manual=thread.manually_linked,
        ),
    )
    return event.model_copy(
        update={"id": stable_id("thread-associated", thread.id, logged.stored.message_id)}
    )
