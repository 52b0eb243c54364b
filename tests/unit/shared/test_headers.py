from email import message_from_bytes, policy
from email.message import EmailMessage

from mailsync_shared.mail.headers import has_line_break, message_ids, single_line


def test_single_line_removes_cr_lf_and_nul() -> None:
    assert single_line("Hello\r\nBcc: victim@x.test\x00!") == "Hello Bcc: victim@x.test !"


def test_encoded_line_break_in_inbound_subject_cannot_become_a_header() -> None:
    inbound = message_from_bytes(
        b"Subject: =?UTF-8?Q?Hi=0ABcc:_evil@attacker.test?=\r\n\r\nbody", policy=policy.default
    )
    decoded = str(inbound["Subject"])
    assert has_line_break(decoded)
    outbound = EmailMessage()
    outbound["Subject"] = "Re: " + single_line(decoded)
    outbound.set_content("x")
    rendered = outbound.as_bytes()
    assert b"\nBcc:" not in rendered
    assert outbound["Bcc"] is None


def test_message_ids_keeps_order_and_ignores_noise() -> None:
    assert message_ids(" <a@x>\r\n\t<b@y> junk <c@z>") == ["<a@x>", "<b@y>", "<c@z>"]
    assert message_ids(None) == []


def test_single_line_removes_everything_str_splitlines_breaks_on() -> None:
    breaks = [chr(c) for c in range(0x110000) if len(f"a{chr(c)}b".splitlines()) > 1]
    value = "x".join(breaks)

    assert len(single_line(value).splitlines()) == 1
    assert all(has_line_break(f"a{brk}b") for brk in breaks)
