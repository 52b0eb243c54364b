"""Extracting the readable text of a message."""

from email.message import EmailMessage

from mailsync_associate.body import MAX_BODY_CHARS, body_text, html_to_text


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
