"""The send service against the real SMTP server, Dovecot, RabbitMQ and the MongoDB-wire server."""

import asyncio
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from imapclient import IMAPClient

from mailsync_send.compose import compose
from mailsync_send.sent_folder import SentFolder
from mailsync_shared.clock import utcnow
from mailsync_shared.contracts.outbound import EmailSendFailed, EmailSent
from mailsync_shared.mail_servers.accounts import Login, ServerLogin
from mailsync_shared.mail_servers.hosts import HostGuard
from mailsync_shared.storage.documents import SendRequestDocument
from mailsync_shared.storage.raw_messages import load_raw, store_raw
from mailsync_shared.storage.scoped import WorkspaceStore
from tests.integration.conftest_send import (  # noqa: F401  (fixtures register by name)
    Sending,
    SendProcess,
    client_fixture,
    owner_fixture,
    rabbit_fixture,
    send_service_fixture,
    sending_fixture,
)
from tests.support.infra import Infra
from tests.support.mail import MailAccount, fetch_all
from tests.support.polling import eventually

pytestmark = pytest.mark.integration


async def messages_in(infra: Infra, account: MailAccount, folder: str = "INBOX") -> list[Any]:
    raw = await asyncio.to_thread(fetch_all, infra, account, folder)
    return [message_from_bytes(data, policy=policy.default) for data in raw]


async def raw_in(infra: Infra, account: MailAccount, folder: str) -> list[bytes]:
    return await asyncio.to_thread(fetch_all, infra, account, folder)


def seen_flags(infra: Infra, account: MailAccount, folder: str) -> list[bool]:
    with IMAPClient(infra.imap_host, port=infra.imap_port, ssl=False, timeout=10) as imap:
        imap.login(account.address, account.password)
        imap.select_folder(folder, readonly=True)
        flags = imap.get_flags(imap.search(["ALL"]))
        return [b"\\Seen" in value for value in flags.values()]


async def request_state(store: WorkspaceStore, request_id: str) -> SendRequestDocument:
    document = await store.send_requests.find_one({"_id": request_id})
    assert document is not None
    return SendRequestDocument.from_document(document)


async def settled(store: WorkspaceStore, request_id: str, state: str) -> SendRequestDocument:
    async def probe() -> SendRequestDocument | None:
        request = await request_state(store, request_id)
        return request if request.state == state else None

    return await eventually(probe, timeout=60, what=f"send request {request_id} to be {state}")


async def reported(store: WorkspaceStore, request_id: str) -> SendRequestDocument:
    async def probe() -> SendRequestDocument | None:
        request = await request_state(store, request_id)
        return request if request.reported_at is not None else None

    return await eventually(probe, what=f"send request {request_id} to be reported")


async def test_a_reply_is_delivered_saved_in_sent_and_reported(
    send_service: SendProcess, sending: Sending
) -> None:
    store, infra, owner, client = sending.store, sending.infra, sending.owner, sending.client
    sent_events = await sending.tap(EmailSent.event_type)
    mailbox = await sending.mailbox()
    request = await sending.request(mailbox)

    await sending.request_send(request.id)

    received = (await sent_events.wait_for_count(1, "email.sent"))[0]
    delivered = await messages_in(infra, client)
    assert len(delivered) == 1
    message = delivered[0]
    assert message["From"] == f"Olive Owner <{owner.address}>"
    assert message["To"] == f"Ann Client <{client.address}>"
    assert message["Subject"] == "Re: Proposal"
    assert message["Message-ID"] == request.message_id
    assert message["In-Reply-To"] == "<first-reply@client.test>"
    assert message["References"] == "<proposal@acme.test> <first-reply@client.test>"
    assert message.get_content().splitlines() == ["Thanks, see you Monday."]

    stored = await reported(store, request.id)
    assert stored.state == "sent"
    assert stored.attempts == 1
    assert stored.sent_at is not None
    assert stored.raw_id is not None
    raw = await load_raw(store, stored.raw_id)
    assert raw is not None
    assert await raw_in(infra, owner, "Sent") == [raw]
    assert await asyncio.to_thread(seen_flags, infra, owner, "Sent") == [True]

    event = EmailSent.model_validate_json(received)
    assert event.workspaceid == sending.workspace_id
    assert event.data.send_request_id == request.id
    assert event.data.thread_id == request.thread_id
    sent = event.data.message
    assert sent.direction == "sent"
    assert sent.mailbox_id == mailbox.id
    assert sent.owner_address == owner.address
    assert sent.raw_id == stored.raw_id
    assert sent.size == len(raw)
    assert sent.message_id == request.message_id
    assert sent.in_reply_to == ["<first-reply@client.test>"]
    assert sent.references == ["<proposal@acme.test>", "<first-reply@client.test>"]
    assert sent.from_ is not None
    assert sent.from_.address == owner.address
    assert [a.address for a in sent.to] == [client.address]
    assert sent.send_request_id == request.id
    assert mailbox.visibility == "metadata"
    assert (sent.subject, sent.bcc) == ("", []), "a metadata mailbox publishes no subject"


async def test_a_redelivered_request_that_was_sent_sends_nothing(
    send_service: SendProcess, sending: Sending
) -> None:
    store, infra, owner, client = sending.store, sending.infra, sending.owner, sending.client
    sent_events = await sending.tap(EmailSent.event_type)
    mailbox = await sending.mailbox()
    first = await sending.request(mailbox)
    await sending.request_send(first.id)
    await sent_events.wait_for_count(1, "email.sent for the first request")
    before = await reported(store, first.id)

    await sending.request_send(first.id)
    # The service takes one request at a time, in order: once the next request is reported,
    # the redelivered one has been handled.
    marker = await sending.request(mailbox, subject="Marker")
    await sending.request_send(marker.id)
    events = await sent_events.wait_for_count(2, "email.sent for the marker")

    assert [EmailSent.model_validate_json(e).data.send_request_id for e in events] == [
        first.id,
        marker.id,
    ]
    delivered = await messages_in(infra, client)
    assert [m["Message-ID"] for m in delivered] == [first.message_id, marker.message_id]
    assert len(await raw_in(infra, owner, "Sent")) == 2
    after = await request_state(store, first.id)
    assert after.attempts == before.attempts == 1
    assert after.updated_at == before.updated_at


async def test_a_request_left_sending_whose_copy_is_in_sent_is_not_sent_again(
    send_service: SendProcess, sending: Sending
) -> None:
    store, infra, owner, client = sending.store, sending.infra, sending.owner, sending.client
    sent_events = await sending.tap(EmailSent.event_type)
    mailbox = await sending.mailbox()
    request = await sending.request(mailbox, state="sending", attempts=1)
    copy = compose(request, mailbox_address=owner.address).data

    def put_in_sent() -> None:
        with IMAPClient(infra.imap_host, port=infra.imap_port, ssl=False, timeout=10) as imap:
            imap.login(owner.address, owner.password)
            imap.append("Sent", copy, flags=(b"\\Seen",))

    await asyncio.to_thread(put_in_sent)

    await sending.request_send(request.id)

    event = EmailSent.model_validate_json((await sent_events.wait_for_count(1, "email.sent"))[0])
    assert event.data.send_request_id == request.id
    assert event.data.message.message_id == request.message_id
    # The event goes out before the request is marked: wait for the mark.
    stored = await settled(store, request.id, "sent")
    assert stored.attempts == 2
    assert await messages_in(infra, client) == []
    assert await raw_in(infra, owner, "Sent") == [copy]


async def test_an_unknown_recipient_fails_the_request_with_the_servers_reason(
    send_service: SendProcess, sending: Sending
) -> None:
    store, infra, owner = sending.store, sending.infra, sending.owner
    failed_events = await sending.tap(EmailSendFailed.event_type)
    sent_events = await sending.tap(EmailSent.event_type)
    mailbox = await sending.mailbox()
    nobody = f"nobody-{sending.workspace_id}@client.test"
    request = await sending.request(mailbox, [nobody])

    await sending.request_send(request.id)

    stored = await settled(store, request.id, "failed")
    assert stored.error is not None
    assert "550" in stored.error
    assert "User unknown" in stored.error
    assert stored.attempts == 1
    event = EmailSendFailed.model_validate_json(
        (await failed_events.wait_for_count(1, "email.send_failed"))[0]
    )
    assert event.data.send_request_id == request.id
    assert event.data.mailbox_id == mailbox.id
    assert event.data.permanent is True
    assert "550" in event.data.reason
    assert nobody not in event.data.reason, "a server reply is published without addresses"
    assert "[address]" in event.data.reason
    assert await sent_events.drain() == []
    assert await raw_in(infra, owner, "Sent") == []


async def test_a_request_for_a_missing_mailbox_fails_without_sending(
    send_service: SendProcess, sending: Sending
) -> None:
    store, infra, client = sending.store, sending.infra, sending.client
    failed_events = await sending.tap(EmailSendFailed.event_type)
    mailbox = await sending.mailbox()
    request = await sending.request(mailbox, mailbox_id="no-such-mailbox")

    await sending.request_send(request.id)

    stored = await settled(store, request.id, "failed")
    assert stored.error == "the sending mailbox is not connected"
    assert stored.attempts == 0
    await failed_events.wait_for_count(1, "email.send_failed")
    assert await messages_in(infra, client) == []


async def test_copies_saved_at_the_same_time_each_land_in_sent_once(
    infra: Infra, owner: MailAccount
) -> None:
    """Copies queued while one is written go together (one MULTIAPPEND on Dovecot)."""
    folder = SentFolder(
        ServerLogin(
            infra.imap_host,
            infra.imap_port,
            "none",
            Login(owner.address, password=owner.password),
        ),
        guard=HostGuard(allow_private=True),
        timeout=10,
    )
    copies = []
    for index in range(6):
        message = EmailMessage()
        message["From"] = owner.address
        message["To"] = "someone@example.test"
        message["Subject"] = f"Copy {index}"
        message["Message-ID"] = f"<copy-{index}@example.test>"
        message.set_content("A copy.\n")
        copies.append(message.as_bytes(policy=policy.SMTP))
    try:
        await asyncio.gather(*(folder.append(data, date=utcnow()) for data in copies))
    finally:
        await folder.close()

    assert sorted(await raw_in(infra, owner, "Sent")) == sorted(copies)


async def test_a_subject_with_a_unicode_line_separator_is_sent_on_one_line(
    send_service: SendProcess, sending: Sending
) -> None:
    store, infra, client = sending.store, sending.infra, sending.client
    mailbox = await sending.mailbox()
    request = await sending.request(mailbox, subject="Budget\u2028review\x85Q3\x0bdraft")

    await sending.request_send(request.id)

    stored = await reported(store, request.id)
    assert stored.state == "sent"
    delivered = await messages_in(infra, client)
    assert [message["Subject"] for message in delivered] == ["Budget review Q3 draft"]


async def test_a_message_the_email_package_cannot_compose_fails_with_its_reason(
    send_service: SendProcess, sending: Sending
) -> None:
    """A forwarded original whose raw 8-bit body cannot be written as 7-bit MIME."""
    store, infra, client = sending.store, sending.infra, sending.client
    failed_events = await sending.tap(EmailSendFailed.event_type)
    mailbox = await sending.mailbox()
    raw_id = await store_raw(store, b"Subject: Hallo\r\n\r\nGr\xfc\xdfe\r\n")
    request = await sending.request(mailbox, forward_of={"raw_id": raw_id})

    await sending.request_send(request.id)

    stored = await settled(store, request.id, "failed")
    assert stored.error is not None
    assert stored.error.startswith("cannot compose the message: UnicodeEncodeError")
    event = EmailSendFailed.model_validate_json(
        (await failed_events.wait_for_count(1, "email.send_failed"))[0]
    )
    assert event.data.permanent is True
    assert await messages_in(infra, client) == []
