"""Extracting the readable text of a message."""

from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from unittest.mock import patch

from mailsync_associate.body import MAX_BODY_CHARS, _parse, body_text, html_to_text


def raw(plain: str | None, html: str | None) -> bytes:
    message = EmailMessage()
    message["From"] = "ann@client.test"
    message["Subject"] = "Hello"
    if plain is not None:
        message.set_content(plain)
        if html is not None:
            message.add_alternative(html, subtype="html")
    elif html is not None:
        message.set_content(html, subtype="html")
    message.add_attachment(b"%PDF-1.4", maintype="application", subtype="pdf", filename="x.pdf")
    return message.as_bytes()


def test_plain_part_is_preferred() -> None:
    assert body_text(raw("Hello Ann\n", "<p>HTML version</p>")).strip() == "Hello Ann"


def test_html_only_is_reduced_to_text() -> None:
    html = "<html><head><style>p{}</style></head><body><p>Hi&nbsp;there</p><p>Line 2</p></body>"
    assert body_text(raw(None, html)) == "Hi there\nLine 2"


def test_script_is_dropped_from_html() -> None:
    assert html_to_text("<div>a<script>alert(1)</script></div><br>b") == "a\nb"


def test_body_is_bounded() -> None:
    assert len(body_text(raw("x" * (MAX_BODY_CHARS + 500), None))) == MAX_BODY_CHARS


def test_undecodable_input_gives_empty_text() -> None:
    nested = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n" * 5
    assert body_text(nested) == ""
    assert body_text(b"") == ""


SINGLE_PART_SHAPES = [
    b"From: a@x.test\r\nSubject: hi\r\n\r\nline one\r\nline two\r\n",
    b"From: a@x.test\nContent-Type: text/plain; charset=utf-8\n\n\xc3\xa9t\xc3\xa9\n\nmore\n",
    b"From: a@x.test\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =\r\nnext\r\n",
    b"From: a@x.test\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8gdGhlcmU=\r\n",
    b"From: a@x.test\r\nstray line in the headers\r\nSubject: after\r\n\r\nbody\r\n",
    b"From a@x.test Mon Jan  1 00:00:00 2024\nSubject: mbox\n\nbody\n",
    b"Subject: old line ends\r\rbody\r\r\nX: y\n\nrest\n",
    b"Subject: a header block with no end",
    b"Subject: empty body\r\n\r\n",
    b"Content-Type: text/html\r\n\r\n<p>Hi</p>\r\n\r\n<p>there</p>",
    b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n",
    b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\n\r\nplain\r\n--b--\r\n",
    b"Content-Type: multipart/mixed\r\n\r\nno boundary at all\r\n",
    b"\xd0\xcf\x11\xe0\xa1\xb1 an Outlook file, not mail\r\n\r\nR\x00o\x00o\x00t\x00\r\n",
]


def test_single_part_parse_matches_the_whole_message_parse() -> None:
    for shape in SINGLE_PART_SHAPES:
        fast, whole = _parse(shape), _whole_parse(shape)
        assert fast.items() == whole.items(), shape
        assert fast.get_unixfrom() == whole.get_unixfrom(), shape
        assert fast.is_multipart() == whole.is_multipart(), shape
        if not whole.is_multipart():
            assert fast.get_payload() == whole.get_payload(), shape
            assert fast.get_payload(decode=True) == whole.get_payload(decode=True), shape
        assert body_text(shape) == _whole_parse_body_text(shape), shape


def _whole_parse(raw: bytes) -> Message:
    return message_from_bytes(raw, policy=policy.compat32)


def _whole_parse_body_text(raw: bytes) -> str:
    with patch("mailsync_associate.body._parse", _whole_parse):
        return body_text(raw)
