"""Composing with attachments, a forwarded message, sanitized HTML and an alias as sender."""

import hashlib
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import pytest

from mailsync_send.compose import Attachment, ComposeError, attachment_type, compose
from mailsync_shared.contracts.mail import Address
from mailsync_shared.mail.html import sanitize_html
from mailsync_shared.storage.documents import (
    AttachmentRef,
    ForwardOf,
    MailboxAlias,
    MailboxDocument,
    SendRequestDocument,
    ServerAccount,
)

OWNER = "owner@acme.test"


def request(**changes: object) -> SendRequestDocument:
    values: dict[str, object] = {
        "_id": "req1",
        "workspace_id": "ws1",
        "mailbox_id": "mb1",
        "idempotency_key": "k1",
        "from": Address(address=OWNER, name="Olive Owner"),
        "to": [Address(address="ann@client.test", name="Ann Client")],
        "subject": "Proposal",
        "body_text": "Please find the proposal attached.\n",
        "message_id": "<send-1@acme.test>",
        "created_at": datetime(2025, 3, 4, 10, 30, tzinfo=UTC),
    }
    values.update(changes)
    return SendRequestDocument.model_validate(values)


def attachment(data: bytes, filename: str, content_type: str) -> Attachment:
    ref = AttachmentRef(
        attachment_id=hashlib.sha256(data).hexdigest(),
        filename=filename,
        content_type=content_type,
        size=len(data),
    )
    return Attachment(ref, data)


def original() -> bytes:
    message = EmailMessage()
    message["From"] = "Ann Client <ann@client.test>"
    message["To"] = OWNER
    message["Subject"] = "Budget"
    message["Message-ID"] = "<budget@client.test>"
    message.set_content("The budget is approved.\n")
    message.add_attachment(b"%PDF-1.4 budget", maintype="application", subtype="pdf",
                           filename="budget.pdf")  # fmt: skip
    return message.as_bytes(policy=policy.SMTP)


def test_attachments_become_parts_with_their_bytes_and_names() -> None:
    pdf = attachment(b"%PDF-1.4 proposal", "proposal.pdf", "application/pdf")
    composed = compose(request(), mailbox_address=OWNER, attachments=[pdf])
    parsed = message_from_bytes(composed.data, policy=policy.default)

    assert parsed.get_content_type() == "multipart/mixed"
    parts = list(parsed.iter_attachments())
    assert [p.get_filename() for p in parts] == ["proposal.pdf"]
    assert parts[0].get_content_type() == "application/pdf"
    assert parts[0].get_content() == b"%PDF-1.4 proposal"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content().splitlines() == ["Please find the proposal attached."]


def test_attachments_compose_to_the_same_bytes_every_time() -> None:
    parts = [attachment(b"one", "a.txt", "text/plain"), attachment(b"two", "b.bin", "x/y")]
    first = compose(request(body_html="<p>Hi</p>"), mailbox_address=OWNER, attachments=parts)
    again = compose(request(body_html="<p>Hi</p>"), mailbox_address=OWNER, attachments=parts)

    assert first.data == again.data


def test_attachments_over_the_cap_are_refused() -> None:
    big = attachment(b"x" * 2048, "big.bin", "application/octet-stream")

    with pytest.raises(ComposeError, match="limit"):
        compose(request(), mailbox_address=OWNER, attachments=[big], max_attachments_bytes=1024)


def test_an_attachment_whose_bytes_do_not_match_its_id_is_refused() -> None:
    wrong = Attachment(AttachmentRef(attachment_id="0" * 64, filename="a.txt", size=3), b"abc")

    with pytest.raises(ComposeError, match="does not match"):
        compose(request(), mailbox_address=OWNER, attachments=[wrong])


def test_an_attachment_name_cannot_inject_headers() -> None:
    sneaky = attachment(b"abc", "a.txt\r\nBcc: victim@evil.test", "text/plain\r\nX-Evil: 1")
    composed = compose(request(), mailbox_address=OWNER, attachments=[sneaky])

    assert b"\r\nBcc:" not in composed.data
    assert b"\r\nX-Evil" not in composed.data
    part = next(message_from_bytes(composed.data, policy=policy.default).iter_attachments())
    assert part.get_content_type() == "application/octet-stream"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("application/pdf", ("application", "pdf")),
        ("Image/PNG", ("image", "png")),
        ("message/rfc822", ("application", "octet-stream")),
        ("multipart/mixed", ("application", "octet-stream")),
        ("nonsense", ("application", "octet-stream")),
    ],
)
def test_attachment_types(given: str, expected: tuple[str, str]) -> None:
    assert attachment_type(given) == expected


def test_a_forward_attaches_the_original_unchanged_as_message_rfc822() -> None:
    raw = original()
    forward = request(
        subject="Fwd: Budget", forward_of=ForwardOf(raw_id="r1", message_id="<budget@client.test>")
    )
    composed = compose(forward, mailbox_address=OWNER, forwarded=raw)
    parsed = message_from_bytes(composed.data, policy=policy.default)

    parts = [p for p in parsed.iter_parts() if p.get_content_type() == "message/rfc822"]
    assert len(parts) == 1
    inner = parts[0].get_content()
    assert inner["Message-ID"] == "<budget@client.test>"
    assert inner["Subject"] == "Budget"
    assert [a.get_filename() for a in inner.iter_attachments()] == ["budget.pdf"]
    assert parsed["Message-ID"] == "<send-1@acme.test>"
    assert parsed.get_all("Message-ID") == ["<send-1@acme.test>"]


def test_a_forward_never_hands_on_the_originals_blind_copies() -> None:
    header = b"Bcc: board@holding.test\r\nResent-Bcc: auditor@holding.test\r\n"
    sent_copy = header + original()
    forward = request(forward_of=ForwardOf(raw_id="r1", message_id="<budget@client.test>"))

    composed = compose(forward, mailbox_address=OWNER, forwarded=sent_copy)

    assert b"board@holding.test" not in composed.data
    assert b"auditor@holding.test" not in composed.data
    parsed = message_from_bytes(composed.data, policy=policy.default)
    (inner,) = [
        p.get_content() for p in parsed.iter_parts() if p.get_content_type() == "message/rfc822"
    ]
    assert inner["Subject"] == "Budget"
    assert inner["Bcc"] is None


def test_html_is_sanitized_before_it_is_sent() -> None:
    html = '<p onclick="x()">Hi <script>alert(1)</script><a href="javascript:x">l</a></p>'
    composed = compose(request(body_html=html), mailbox_address=OWNER)
    parsed = message_from_bytes(composed.data, policy=policy.default)
    sent = parsed.get_body(("html",))
    assert sent is not None

    content = sent.get_content()
    assert "script" not in content
    assert "alert" not in content
    assert "onclick" not in content
    assert "javascript" not in content
    assert "<p>Hi " in content


def test_sanitize_keeps_formatting_and_safe_links() -> None:
    clean = sanitize_html('<b>Bold</b> <a href="https://acme.test/x">x</a><style>p{}</style>')

    assert "<b>Bold</b>" in clean
    assert 'href="https://acme.test/x"' in clean
    assert "style" not in clean


def test_a_verified_alias_may_be_the_sender_with_the_mailbox_as_envelope_sender() -> None:
    alias = request(**{"from": Address(address="sales@acme.test", name="Acme Sales")})
    composed = compose(alias, mailbox_address=OWNER, verified_aliases=["Sales@acme.test"])
    parsed = message_from_bytes(composed.data, policy=policy.default)

    assert parsed["From"] == "Acme Sales <sales@acme.test>"
    assert composed.envelope_from == OWNER


def test_another_address_is_refused_as_sender() -> None:
    other = request(**{"from": Address(address="ceo@acme.test")})

    with pytest.raises(ComposeError, match="verified aliases"):
        compose(other, mailbox_address=OWNER, verified_aliases=["sales@acme.test"])


def test_only_verified_aliases_count_for_the_mailbox() -> None:
    account = ServerAccount(host="mail.acme.test", port=993, username=OWNER)
    mailbox = MailboxDocument(
        workspace_id="ws1",
        address="Owner@acme.test",
        imap=account,
        smtp=account,
        aliases=[
            MailboxAlias(address="sales@acme.test", verified=True),
            MailboxAlias(address="ceo@acme.test", verified=False),
        ],
    )

    assert mailbox.can_send_as("owner@ACME.test")
    assert mailbox.can_send_as("sales@acme.test")
    assert not mailbox.can_send_as("ceo@acme.test")
    assert not mailbox.can_send_as("someone@else.test")
