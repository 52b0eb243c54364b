"""`email.logged` is built without Bcc recipients."""

from mailsync_associate.events import email_logged
from mailsync_associate.logbook import Logged
from mailsync_shared.contracts.mail import Address, MailMessage
from mailsync_shared.storage.documents import MessageDocument, ThreadDocument


def test_email_logged_names_no_bcc_recipient() -> None:
    message = MailMessage(
        mailbox_id="m1",
        owner_address="olga@acme.test",
        direction="sent",
        raw_id="r1",
        size=10,
        message_id="<a@acme.test>",
        from_=Address(address="olga@acme.test"),
        to=[Address(address="ann@client.test")],
        bcc=[Address(address="boss@acme.test")],
    )
    stored = MessageDocument(
        workspace_id="w1",
        message_id=message.message_id,
        thread_id="t1",
        mailbox_ids=["m1"],
        direction="sent",
        raw_id="r1",
    )
    thread = ThreadDocument(workspace_id="w1", mailbox_ids=["m1"])
    logged = Logged(message, stored, thread, publish=True, links_changed=False)

    event = email_logged("w1", logged)

    assert [a.address for a in event.data.participants] == ["olga@acme.test", "ann@client.test"]
