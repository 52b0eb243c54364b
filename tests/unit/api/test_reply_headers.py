"""Who a reply goes to, its subject and how it points back at the thread."""

from datetime import UTC, datetime

from mailsync_api.replies import MAX_REFERENCES, reply_headers, reply_subject
from mailsync_shared.contracts.mail import Address
from mailsync_shared.storage.documents import MessageDocument

OWNER = "olga@acme.test"
ANN = Address(address="ann@client.test", name="Ann")
BEN = Address(address="ben@client.test", name="Ben")
ME = Address(address=OWNER, name="Olga")


def message(**fields: object) -> MessageDocument:
    values: dict[str, object] = {
        "workspace_id": "ws",
        "message_id": "<last@client.test>",
        "thread_id": "t",
        "mailbox_ids": ["mb"],
        "direction": "received",
        "from_": ANN,
        "to": [ME],
        "subject": "Pricing",
        "date": datetime(2025, 1, 1, tzinfo=UTC),
        "raw_id": "raw",
        **fields,
    }
    return MessageDocument.model_validate(values)


def test_subject_gets_one_re_prefix() -> None:
    assert reply_subject("Pricing") == "Re: Pricing"
    assert reply_subject("Re: Pricing") == "Re: Pricing"
    assert reply_subject("RE:Pricing") == "RE:Pricing"
    assert reply_subject("re[2]: Pricing") == "re[2]: Pricing"
    assert reply_subject("Ready to go") == "Re: Ready to go"
    assert reply_subject("") == "Re:"


def test_subject_from_inbound_mail_loses_line_breaks() -> None:
    assert reply_subject("Hi\r\nBcc: victim@else.test") == "Re: Hi Bcc: victim@else.test"


def test_reply_goes_to_the_sender() -> None:
    headers = reply_headers([message(cc=[BEN])], OWNER, reply_all=False)

    assert headers.to == [ANN]
    assert headers.cc == []


def test_reply_to_the_owners_own_message_goes_to_its_recipients() -> None:
    last = message(from_=Address(address="Olga@Acme.test"), to=[ANN, ME], cc=[BEN])

    headers = reply_headers([last], OWNER, reply_all=True)

    assert headers.to == [ANN]
    assert headers.cc == [BEN]


def test_reply_all_copies_the_others_once_and_never_the_owner() -> None:
    last = message(to=[ME, BEN, ANN], cc=[BEN, Address(address="cy@client.test")])

    headers = reply_headers([last], OWNER, reply_all=True)

    assert headers.to == [ANN]
    assert [address.address for address in headers.cc] == ["ben@client.test", "cy@client.test"]


def test_in_reply_to_and_references_follow_the_last_message() -> None:
    first = message(message_id="<first@client.test>")
    last = message(references=["<root@x>", "<first@client.test>"])

    headers = reply_headers([first, last], OWNER, reply_all=False)

    assert headers.in_reply_to == ["<last@client.test>"]
    assert headers.references == ["<root@x>", "<first@client.test>", "<last@client.test>"]


def test_long_reference_chains_keep_the_root_and_the_most_recent() -> None:
    chain = [f"<r{index}@x>" for index in range(50)]

    headers = reply_headers([message(references=chain)], OWNER, reply_all=False)

    assert len(headers.references) == MAX_REFERENCES
    assert headers.references[0] == "<r0@x>"
    assert headers.references[-2:] == ["<r49@x>", "<last@client.test>"]


def test_copied_header_values_are_single_line() -> None:
    last = message(
        message_id="<last@client.test>\r\n",
        references=["<a@x>\nBcc: x@y"],
        from_=Address(address="ann@client.test", name="Ann\r\nBcc: victim@else.test"),
    )

    headers = reply_headers([last], OWNER, reply_all=False)

    values = [headers.subject, *headers.in_reply_to, *headers.references, headers.to[0].name]
    assert not any("\r" in value or "\n" in value for value in values)
    assert headers.to[0].name == "Ann Bcc: victim@else.test"
