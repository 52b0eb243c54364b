"""Header-level facts extracted from a message's header block."""

from datetime import UTC, datetime

from mailsync_ingest.headers import MessageContext, decode_text, mail_message
from mailsync_shared.contracts.mail import FolderRole, MailMessage, MailSource

RAW_ID = "ab" * 32


def context(role: FolderRole = "inbox", owner: str = "Owner@Acme.test") -> MessageContext:
    source = MailSource(mailbox_id="mb1", folder="INBOX", folder_role=role, uidvalidity=7, uid=42)
    return MessageContext(mailbox_id="mb1", owner_address=owner, source=source)


def facts(
    headers: str,
    *,
    role: FolderRole = "inbox",
    internal_date: datetime | None = None,
    max_addresses: int = 1000,
) -> MailMessage:
    block = headers.replace("\n", "\r\n").encode() + b"\r\n"
    return mail_message(
        block,
        context=context(role),
        raw_id=RAW_ID,
        size=len(block),
        internal_date=internal_date,
        max_addresses=max_addresses,
    )


def test_encoded_line_breaks_in_subject_are_stripped() -> None:
    message = facts(
        "From: a@client.test\n"
        "Subject: =?UTF-8?Q?Quote=0D=0ABcc:_victim@evil.test?=\n"
        "Message-ID: <1@client.test>\n"
    )
    assert "\r" not in message.subject
    assert "\n" not in message.subject
    assert message.subject == "Quote Bcc: victim@evil.test"


def test_folded_and_encoded_subject_is_one_decoded_line() -> None:
    message = facts("Subject: =?UTF-8?B?SMOpbGxv?=\n =?UTF-8?Q?_w=C3=B6rld?=\n")
    assert message.subject == "Héllo wörld"


def test_a_missing_message_id_ignores_trace_headers_but_not_content() -> None:
    first = facts("Received: from a by b; Mon, 1 Jan 2024\nFrom: a@client.test\nSubject: no id\n")
    again = facts("Received: from c by d; Tue, 2 Jan 2024\nFrom: a@client.test\nSubject: no id\n")
    other = facts("From: a@client.test\nSubject: another\n")
    assert first.message_id == again.message_id
    assert first.message_id.endswith("@mailsync.invalid>")
    assert first.message_id != other.message_id


def test_addresses_are_lower_cased_with_decoded_names() -> None:
    message = facts(
        "From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <Joerg.Mueller@Client.TEST>\n"
        "To: Owner <OWNER@acme.test>, second@Client.Test\n"
        'Cc: "Smith, Ann" <ANN@client.test>, not-an-address\n'
        "To: third@client.test, second@client.test\n"
    )
    assert message.from_ is not None
    assert message.from_.address == "joerg.mueller@client.test"
    assert message.from_.name == "Jörg Müller"
    assert [a.address for a in message.to] == [
        "owner@acme.test",
        "second@client.test",
        "third@client.test",
    ]
    assert [(a.address, a.name) for a in message.cc] == [("ann@client.test", "Smith, Ann")]


def test_reply_chain_and_date() -> None:
    message = facts(
        "Message-ID: <3@client.test>\n"
        "In-Reply-To: <2@acme.test>\n"
        "References: <1@client.test>\n <2@acme.test>\n"
        "Date: Tue, 04 Mar 2025 10:00:00 +0100\n"
    )
    assert message.message_id == "<3@client.test>"
    assert message.in_reply_to == ["<2@acme.test>"]
    assert message.references == ["<1@client.test>", "<2@acme.test>"]
    assert message.date == datetime(2025, 3, 4, 9, 0, tzinfo=UTC)


def test_unparsable_date_falls_back_to_internaldate() -> None:
    arrived = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    message = facts("Date: yesterday-ish\n", internal_date=arrived)
    assert message.date == arrived


def test_direction_follows_sent_folder_or_owner_sender() -> None:
    from_owner = facts("From: OWNER@acme.test\nTo: a@client.test\n")
    from_client = facts("From: a@client.test\nTo: owner@acme.test\n")
    in_sent = facts("From: alias@acme.test\n", role="sent")
    assert from_owner.direction == "sent"
    assert from_client.direction == "received"
    assert in_sent.direction == "sent"
    assert in_sent.source is not None
    assert in_sent.source.uid == 42


def test_automation_hints() -> None:
    message = facts(
        "From: noreply@shop.test\n"
        "Auto-Submitted: Auto-Generated\n"
        "Precedence: BULK\n"
        "List-Unsubscribe: <mailto:u@shop.test>\n"
    )
    assert message.automation.auto_submitted == "auto-generated"
    assert message.automation.precedence == "bulk"
    assert message.automation.list_unsubscribe is True
    assert facts("From: a@client.test\n").automation.list_unsubscribe is False


def test_too_many_addresses_are_cut_and_recorded() -> None:
    to = ", ".join(f"p{n}@client.test" for n in range(50))
    message = facts(f"From: a@client.test\nTo: {to}\n", max_addresses=10)
    assert len(message.to) == 10
    assert message.to[-1].address == "p9@client.test"
    assert "addresses_cut" in message.defects


def test_unknown_charset_degrades_instead_of_failing() -> None:
    assert decode_text("=?x-no-such-charset?Q?caf=E9?=") == "café"


def raw_facts(block: bytes, **options: object) -> MailMessage:
    return mail_message(
        block,
        context=context(),
        raw_id=RAW_ID,
        size=len(block),
        internal_date=datetime(2024, 5, 1, tzinfo=UTC),
        **options,  # type: ignore[arg-type]
    )


def test_obsolete_syntax_bom_and_a_stray_line_keep_every_header() -> None:
    message = raw_facts(
        b"\xef\xbb\xbfFrom  : Ann <ann@client.test>\r\n"
        b"this line is no header\r\n"
        b"Subject: Budget\r\n"
        b"Message-ID: <m1@client.test>\r\n\r\nbody"
    )
    assert message.from_ is not None
    assert message.from_.address == "ann@client.test"
    assert message.subject == "Budget"
    assert message.message_id == "<m1@client.test>"
    assert "header_line_skipped" in message.defects


def test_a_lone_cr_or_a_bare_lf_does_not_end_the_header_block() -> None:
    message = raw_facts(b"Subject: one\rtwo\nFrom: a@client.test\r\nMessage-ID: <m@c.test>\n\n")
    assert message.subject == "one two"
    assert message.message_id == "<m@c.test>"


def test_utf8_headers_are_kept_intact() -> None:
    message = raw_facts(
        "Subject: Säying Hello\r\nFrom: Jürgen <jürgen@client.test>\r\n\r\n".encode()
    )
    assert message.subject == "Säying Hello"
    assert message.from_ is not None
    assert (message.from_.name, message.from_.address) == ("Jürgen", "jürgen@client.test")
    assert message.defects == []


def test_encoded_words_fall_back_from_the_declared_charset_to_utf8_then_cp1252() -> None:
    message = raw_facts(
        b"Subject: =?iso-8859-1?q?Fr\xf6sche?= =?x-unknown?q?_gr=C3=BCn?= =?utf-8?q?_s=FC=DF?=\r\n"
        b"\r\n"
    )
    assert message.subject == "Frösche grün süß"
    assert "\\u" not in message.subject
    assert "charset_replaced" in message.defects


def test_display_names_never_become_addresses() -> None:
    message = raw_facts(
        b'From: a@x.test b@y.test\r\nTo: "a@b.test" <c@d.test>, e@f.test <g@h.test>,'
        b" i@j.test (Ivy Jones)\r\n\r\n"
    )
    assert message.from_ is not None
    assert message.from_.address == "a@x.test"
    assert [(a.name, a.address) for a in message.to] == [
        ("a@b.test", "c@d.test"),
        ("e@f.test", "g@h.test"),
        ("Ivy Jones", "i@j.test"),
    ]


def test_a_huge_to_keeps_its_first_addresses_and_every_header_after_it() -> None:
    to = b"To: " + b",\r\n ".join(b"u%d@client.test" % n for n in range(20_000))
    message = raw_facts(
        to + b"\r\nSubject: after\r\nMessage-ID: <m@client.test>\r\nFrom: a@client.test\r\n"
        b"Date: Wed, 1 May 2024 10:00:00 +0000\r\n\r\n"
    )
    assert len(message.to) == 1000
    assert message.to[0].address == "u0@client.test"
    assert message.subject == "after"
    assert message.message_id == "<m@client.test>"
    assert message.from_ is not None
    assert message.date == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert {"header_truncated", "addresses_cut"} <= set(message.defects)


def test_thousands_of_encoded_word_lines_parse_without_recursion() -> None:
    words = b"\r\n ".join(b"=?utf-8?q?J=C3=BCrgen?=" for _ in range(3000))
    message = raw_facts(b"To: " + words + b" <j@client.test>\r\nSubject: ok\r\n\r\n")
    assert [a.address for a in message.to] == ["j@client.test"]
    assert message.to[0].name.startswith("JürgenJürgen")
    assert message.subject == "ok"


def test_a_date_far_after_internaldate_or_before_1980_is_replaced() -> None:
    late = raw_facts(b"Date: Mon, 1 Jan 3609 00:00:00 +0000\r\n\r\n")
    early = raw_facts(b"Date: Mon, 1 Jan 1979 00:00:00 +0000\r\n\r\n")
    assert late.date == early.date == datetime(2024, 5, 1, tzinfo=UTC)
    assert "date_out_of_range" in late.defects
    assert "date_out_of_range" in early.defects


def test_a_missing_message_id_depends_on_the_body() -> None:
    block = b"From: a@client.test\r\nSubject: no id\r\n\r\n"
    assert raw_facts(block, body=b"one").message_id != raw_facts(block, body=b"two").message_id
    assert raw_facts(block, body=b"one").message_id == raw_facts(block, body=b"one").message_id


def test_comments_and_white_space_inside_addresses_and_groups_are_read_as_rfc_5322_says() -> None:
    message = raw_facts(
        b"From: Pete(A wonderful \\) chap) <pete(his account)@silly.test(his host)>\r\n"
        b"To:A Group(Some people)\r\n"
        b"     :Chris Jones <c@(Chris's host.)public.example>,\r\n"
        b"         joe@example.org,\r\n"
        b"  John <jdoe@one.test> (my dear friend); (the end of the group)\r\n"
        b"Cc: Mary Smith <@machine.tld:mary@example.net>, , jdoe@test   . example\r\n\r\n"
    )
    assert message.from_ is not None
    assert (message.from_.address, message.from_.name) == ("pete@silly.test", "Pete")
    assert [a.address for a in message.to] == [
        "c@public.example",
        "joe@example.org",
        "jdoe@one.test",
    ]
    assert [a.address for a in message.cc] == ["mary@example.net", "jdoe@test.example"]


def test_the_first_readable_date_and_a_message_id_without_brackets_are_used() -> None:
    message = raw_facts(
        b"Date: Tue, 7 Apr 2024 10:00:t <broken@example.test>\r\n"
        b"Date: Tue, 7 Apr 2024 10:00:01 +0000\r\n"
        b"Message-Id: 201002191008.30117.foo.bar@company.com\r\n\r\n"
    )
    assert message.date == datetime(2024, 4, 7, 10, 0, 1, tzinfo=UTC)
    assert message.message_id == "<201002191008.30117.foo.bar@company.com>"
    assert raw_facts(b"Message-Id: 12223\r\n\r\n").message_id.endswith("@mailsync.invalid>")


def test_charsets_are_read_under_the_names_python_knows_them_by() -> None:
    gb = raw_facts(b"Subject: =?gb2312?B?yrLDtIzC?=\r\n\r\n")  # GBK beyond GB2312
    hebrew = raw_facts(b"Subject: =?iso-8859-8-i?B?7vLw5CAn4PDpIOzgIPDu9uAnOg==?=\r\n\r\n")
    japanese = raw_facts(
        b"Subject: =?iso-2022-jp?B?GyRCJygnJS1iGyhCNDEgGyRCJ2AnZBsoQiAyOC4wOS4yMDE2?=\r\n\r\n"
    )
    assert gb.subject == "什么屄"
    assert hebrew.subject == "מענה 'אני לא נמצא':"
    assert japanese.subject == "ЖД№41 от 28.09.2016"
    assert gb.defects == hebrew.defects == japanese.defects == []
