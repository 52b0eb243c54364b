"""Public events as associate would publish them, for tests of what carries them."""

from mailsync_shared.contracts.mail import Address
from mailsync_shared.contracts.records import EmailLogged, LoggedEmail


def logged_email(workspace_id: str, number: int) -> EmailLogged:
    """The `email.logged` event of message `number` on thread `t1`, from ann@client.test."""
    return EmailLogged.create(
        source="/mailsync/test",
        workspace_id=workspace_id,
        data=LoggedEmail(
            email_id=f"e{number}",
            thread_id="t1",
            mailbox_id="m1",
            message_id=f"<{number}@client.test>",
            direction="received",
            subject=f"Message {number}",
            date=None,
            participants=[Address(address="ann@client.test")],
        ),
    )
