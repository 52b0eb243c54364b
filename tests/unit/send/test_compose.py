"""Composing outbound mail: headers, threading, and no header injection through any value."""

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.headerregistry import HeaderRegistry

import pytest

import mailsync_send.compose as composing
from mailsync_send.compose import ComposeError, compose
from mailsync_shared.contracts.mail import Address
from mailsync_shared.storage.documents import SendRequestDocument

OWNER = "owner@acme.test"


def request(**changes: object) -> SendRequestDocument:
    values: dict[str, object] = {
        "_id": "req1",
        "workspace_id": "ws1",
        "mailbox_id": "mb1",
        "idempotency_key": "k1",
        "from": Address(address=OWNER, name="Olive Owner"),
        "to": [Address(address="ann@client.test", name="Ann Client")],
        "cc": [Address(address="bob@client.test")],
        "bcc": [Address(address="boss@acme.test", name="Boss")],
        "subject": "Re: Proposal",
        "body_text": "Thanks, see you Monday.\n",
        "in_reply_to": ["<m2@client.test>"],
        "references": ["<m1@acme.test>", "<m2@client.test>"],
        "message_id": "<reply-1@acme.test>",
        "created_at": datetime(2025, 3, 4, 10, 30, tzinfo=UTC),
    }
    values.update(changes)
    return SendRequestDocument.model_validate(values)


def header_lines(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    return [line for line in head.split("\r\n") if line and not line[0].isspace()]


def header_names(data: bytes) -> list[str]:
    return [line.split(":", 1)[0].lower() for line in header_lines(data)]


def test_headers_carry_sender_recipients_and_threading() -> None:
    composed = compose(request(), mailbox_address=OWNER)
    parsed = message_from_bytes(composed.data, policy=policy.default)

    assert parsed["From"] == "Olive Owner <owner@acme.test>"
    assert parsed["To"] == "Ann Client <ann@client.test>"
    assert parsed["Cc"] == "bob@client.test"
    assert parsed["Subject"] == "Re: Proposal"
    assert parsed["Message-ID"] == "<reply-1@acme.test>"
    assert parsed["In-Reply-To"] == "<m2@client.test>"
    assert parsed["References"] == "<m1@acme.test> <m2@client.test>"
    assert parsed["Date"].datetime == datetime(2025, 3, 4, 10, 30, tzinfo=UTC)
    assert parsed.get_content_type() == "text/plain"
    assert composed.envelope_from == OWNER
    assert composed.recipients == ("ann@client.test", "bob@client.test", "boss@acme.test")


def test_bcc_is_an_envelope_recipient_only() -> None:
    composed = compose(request(), mailbox_address=OWNER)

    assert "bcc" not in header_names(composed.data)
    assert b"boss@acme.test" not in composed.data
    assert "boss@acme.test" in composed.recipients


def test_exactly_one_message_id_is_emitted() -> None:
    composed = compose(request(), mailbox_address=OWNER)

    assert header_names(composed.data).count("message-id") == 1
    assert composed.message_id == "<reply-1@acme.test>"


def test_the_same_request_composes_to_the_same_bytes() -> None:
    with_html = request(body_html="<p>Thanks</p>")

    first = compose(with_html, mailbox_address=OWNER)
    second = compose(with_html, mailbox_address=OWNER)

    assert first.data == second.data


def test_html_is_an_alternative_to_the_text() -> None:
    composed = compose(request(body_html="<p>Thanks</p>"), mailbox_address=OWNER)
    parsed = message_from_bytes(composed.data, policy=policy.default)

    assert parsed.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in parsed.iter_parts()]
    assert parts == ["text/plain", "text/html"]
    html = parsed.get_body(("html",))
    assert html is not None
    assert "<p>Thanks</p>" in html.get_content()


@pytest.mark.parametrize(
    "subject",
    [
        "Hi =?UTF-8?Q?=0A?=Bcc: evil@attacker.test",
        "Hi =?UTF-8?B?Cg==?=Bcc: evil@attacker.test",
        "Hi\r\nBcc: evil@attacker.test",
        "Hi\nBcc: evil@attacker.test",
        "Hi\x00\rBcc: evil@attacker.test",
    ],
)
def test_a_subject_cannot_add_a_header(subject: str) -> None:
    composed = compose(request(subject=subject), mailbox_address=OWNER)

    assert "bcc" not in header_names(composed.data)
    assert header_names(composed.data).count("subject") == 1
    assert "evil@attacker.test" not in composed.recipients
    assert "\n" not in composed.subject
    assert "\r" not in composed.subject


def test_a_display_name_cannot_add_a_header() -> None:
    hostile = "Ann =?UTF-8?Q?=0A?=Bcc: evil@attacker.test"
    composed = compose(
        request(
            **{
                "from": Address(address=OWNER, name="Olive\r\nBcc: evil@attacker.test"),
                "to": [Address(address="ann@client.test", name=hostile)],
            }
        ),
        mailbox_address=OWNER,
    )

    assert "bcc" not in header_names(composed.data)
    assert header_names(composed.data).count("to") == 1
    assert header_names(composed.data).count("from") == 1


def test_threading_ids_with_line_breaks_are_reduced_to_their_ids() -> None:
    composed = compose(
        request(
            in_reply_to=["<m2@client.test>\r\nBcc: evil@attacker.test"],
            references=["<m1@acme.test>\nX-Injected: 1", "junk"],
        ),
        mailbox_address=OWNER,
    )

    assert composed.in_reply_to == ("<m2@client.test>",)
    assert composed.references == ("<m1@acme.test>",)
    assert "bcc" not in header_names(composed.data)
    assert "x-injected" not in header_names(composed.data)


def test_long_message_ids_stay_unencoded() -> None:
    long_id = "<" + "a" * 120 + "@client.test>"
    composed = compose(request(in_reply_to=[long_id], references=[long_id]), mailbox_address=OWNER)
    parsed = message_from_bytes(composed.data, policy=policy.compat32)

    assert parsed["In-Reply-To"] == long_id
    assert parsed["References"] == long_id


@pytest.mark.parametrize(
    "message_id",
    ["<x@acme.test>\r\nBcc: evil@attacker.test", "no-brackets@acme.test", "<a@b> <c@d>", ""],
)
def test_a_malformed_message_id_is_refused(message_id: str) -> None:
    with pytest.raises(ComposeError):
        compose(request(message_id=message_id), mailbox_address=OWNER)


@pytest.mark.parametrize(
    "address",
    ["ann@client.test\r\nBcc: evil@attacker.test", "ann@client.test, evil@attacker.test", "ann"],
)
def test_a_malformed_recipient_is_refused(address: str) -> None:
    with pytest.raises(ComposeError):
        compose(request(to=[Address(address=address)]), mailbox_address=OWNER)


def test_sending_from_another_address_than_the_mailbox_is_refused() -> None:
    with pytest.raises(ComposeError, match="From address"):
        compose(request(), mailbox_address="someone-else@acme.test")


def test_a_request_without_recipients_is_refused() -> None:
    with pytest.raises(ComposeError, match="no recipients"):
        compose(request(to=[], cc=[], bcc=[]), mailbox_address=OWNER)


def test_non_ascii_text_is_encoded_and_round_trips() -> None:
    composed = compose(
        request(subject="Re: Angebot für Müller", body_text="Grüße\n"), mailbox_address=OWNER
    )
    parsed = message_from_bytes(composed.data, policy=policy.default)

    assert all(byte < 128 for byte in composed.data)
    assert parsed["Subject"] == "Re: Angebot für Müller"
    body = parsed.get_body(("plain",))
    assert body is not None
    assert body.get_content().splitlines() == ["Grüße"]


@pytest.mark.parametrize(
    "brk", ["\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
)
def test_every_line_break_python_knows_is_removed_from_header_text(brk: str) -> None:
    composed = compose(
        request(
            subject=f"Budget{brk}review",
            to=[Address(address="ann@client.test", name=f"Ann{brk}Client")],
        ),
        mailbox_address=OWNER,
    )
    parsed = message_from_bytes(composed.data, policy=policy.default)

    assert composed.subject == "Budget review"
    assert parsed["Subject"] == "Budget review"
    assert parsed["To"] == "Ann Client <ann@client.test>"


def test_an_error_inside_the_email_package_is_a_compose_error() -> None:
    with pytest.raises(ComposeError, match="UnicodeEncodeError"):
        compose(request(body_text="lone surrogate \ud800"), mailbox_address=OWNER)


def test_the_kept_header_classes_compose_the_same_bytes_as_the_stock_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    item = request(
        cc=[Address(address="carl@client.test", name="Carl, Client")],
        body_html="<p>Hello <b>there</b></p>",
        in_reply_to=["<prior@client.test>"],
        references=["<first@client.test>", "<prior@client.test>"],
    )
    kept = compose(item, mailbox_address=OWNER).data
    stock = composing.OUTBOUND_POLICY.clone(header_factory=HeaderRegistry())
    monkeypatch.setattr(composing, "OUTBOUND_POLICY", stock)
    assert compose(item, mailbox_address=OWNER).data == kept
