"""Validation of values that reach mail headers and records."""

import pytest
from pydantic import ValidationError

from mailsync_api.schemas.mailboxes import MailboxIn, ServerIn
from mailsync_api.schemas.records import CompanyIn, ContactIn
from mailsync_api.schemas.send_requests import ComposeIn


def test_addresses_are_validated_lower_cased_and_deduplicated() -> None:
    contact = ContactIn(emails=["Ann@Client.TEST", "ann@client.test", "b@Example.COM"])

    assert contact.emails == ["ann@client.test", "b@example.com"]


@pytest.mark.parametrize(
    "address", ["no-at-sign", "a b@x.com", "ann@client.test\r\nBcc: x@y.test", "Ann <a@x.com>"]
)
def test_invalid_addresses_are_refused(address: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ContactIn(emails=[address])

    assert raised.value.errors()[0]["loc"] == ("emails", 0)


def test_company_domains_are_normalized_and_checked() -> None:
    assert CompanyIn(name="C", domains=["Client.TEST.", "client.test"]).domains == ["client.test"]
    with pytest.raises(ValidationError):
        CompanyIn(name="C", domains=["not a domain"])


@pytest.mark.parametrize("subject", ["a\rb", "a\nb", "a\r\nBcc: x@y.test", "a\x00b"])
def test_subjects_with_line_breaks_are_refused(subject: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ComposeIn(mailbox_id="mb", to=[{"address": "a@x.com"}], subject=subject, body_text="b")

    assert raised.value.errors()[0]["loc"] == ("subject",)


def test_passwords_with_line_breaks_are_refused_without_echoing_them() -> None:
    with pytest.raises(ValidationError) as raised:
        ServerIn(host="imap.x.com", port=993, username="u", password="pw\r\nA1 LOGOUT")

    assert "A1 LOGOUT" not in str(raised.value)


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError) as raised:
        ContactIn(emails=["a@x.com"], emial="typo")  # type: ignore[call-arg]

    assert raised.value.errors()[0]["loc"] == ("emial",)


def test_a_refused_mailbox_does_not_quote_its_password() -> None:
    server = {"host": "imap.x.com", "port": 993, "username": "u", "password": "pw\nA1 LOGOUT"}

    with pytest.raises(ValidationError) as raised:
        MailboxIn.model_validate({"address": "a@x.com", "imap": server, "smtp": server})

    assert "A1 LOGOUT" not in str(raised.value)
    assert raised.value.errors()[0]["loc"] == ("imap", "password")
