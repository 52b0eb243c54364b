"""A sent message published without subject and Bcc is logged whole from its send request."""

from datetime import UTC, datetime

from mailsync_associate.sent_mail import completed
from mailsync_shared.contracts.mail import Address, MailMessage
from mailsync_shared.contracts.outbound import EmailSent, SentEmail
from mailsync_shared.event_privacy import public_copy
from mailsync_shared.storage.documents import SendRequestDocument


def test_a_private_mailboxs_sent_message_is_completed_from_its_request() -> None:
    request = SendRequestDocument(
        workspace_id="w1",
        mailbox_id="m1",
        idempotency_key="k",
        from_=Address(address="olga@acme.test", name="Olga"),
        to=[Address(address="ann@client.test")],
        bcc=[Address(address="boss@acme.test")],
        subject="Offer",
        body_text="x",
        message_id="<s1@acme.test>",
        references=["<a@client.test>"],
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
    )
    whole = MailMessage(
        mailbox_id="m1",
        owner_address="olga@acme.test",
        direction="sent",
        raw_id="r1",
        size=10,
        message_id="<s1@acme.test>",
        references=["<a@client.test>"],
        subject="Offer",
        date=request.created_at,
        from_=Address(address="olga@acme.test", name="Olga"),
        to=[Address(address="ann@client.test")],
        bcc=[Address(address="boss@acme.test")],
        send_request_id="s1",
    )
    event = EmailSent.create(
        source="/t", workspace_id="w1", data=SentEmail(send_request_id="s1", message=whole)
    )
    published = public_copy(event, "private").data.message

    assert (published.subject, published.bcc, published.message_id, published.to) == (
        "",
        [],
        "",
        [],
    )
    assert completed(published, request).model_dump(exclude={"size"}) == whole.model_dump(
        exclude={"size"}
    )
