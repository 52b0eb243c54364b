"""Real mail for tests: accounts on Dovecot, delivery over LMTP, reading over IMAP."""

import imaplib
import smtplib
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from mailsync_devmail.accounts import add_accounts
from tests.support.infra import Infra


@dataclass(frozen=True)
class MailAccount:
    address: str
    password: str


def create_account(infra: Infra, domain: str, local: str = "user") -> MailAccount:
    """A fresh Dovecot account with a unique address under `domain`, returned once it logs in."""
    return create_accounts(infra, domain, 1, local)[0]


def create_accounts(
    infra: Infra, domain: str, count: int, local: str = "user"
) -> list[MailAccount]:
    """`count` fresh Dovecot accounts added in one write, returned once the last logs in.

    Dovecot re-reads its passwd-file at most once a second, so a login right after the account
    was added can still be refused.
    """
    accounts = [
        MailAccount(f"{local}-{uuid.uuid4().hex[:10]}@{domain}", uuid.uuid4().hex)
        for _ in range(count)
    ]
    add_accounts(infra.mail_users_file, {a.address: a.password for a in accounts})
    deadline = time.monotonic() + 20
    while True:
        try:
            imap_login(infra, accounts[-1]).logout()
            return accounts
        except imaplib.IMAP4.error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def mailbox_connection(infra: Infra, account: MailAccount, **fields: Any) -> dict[str, Any]:
    """The body of `POST /v1/mailboxes` connecting `account` on the local Dovecot (IMAP) and
    SMTP server, without TLS, with `fields` added."""
    login = {"username": account.address, "password": account.password, "security": "none"}
    return {
        "address": account.address,
        "imap": {**login, "host": infra.imap_host, "port": infra.imap_port},
        "smtp": {**login, "host": infra.smtp_host, "port": infra.smtp_port},
        **fields,
    }


def build_message(
    *,
    sender: str,
    to: list[str],
    subject: str,
    body: str,
    sender_name: str = "",
    cc: list[str] | None = None,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    extra_headers: dict[str, str] | None = None,
    date: datetime | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"{sender_name} <{sender}>" if sender_name else sender
    message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    message["Subject"] = subject
    message["Date"] = format_datetime(date or datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[1])
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = " ".join(references)
    for name, value in (extra_headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message


def deliver(infra: Infra, message: EmailMessage, recipients: list[str]) -> None:
    """Deliver straight into Dovecot over LMTP, as the recipient's provider would."""
    with smtplib.LMTP(infra.imap_host, infra.lmtp_port) as lmtp:
        lmtp.send_message(message, to_addrs=recipients)


def submit(infra: Infra, account: MailAccount, message: EmailMessage) -> None:
    """Send through the authenticated SMTP server, as a mail client would."""
    with smtplib.SMTP(infra.smtp_host, infra.smtp_port) as smtp:
        smtp.login(account.address, account.password)
        smtp.send_message(message)


def imap_login(infra: Infra, account: MailAccount) -> imaplib.IMAP4:
    client = imaplib.IMAP4(infra.imap_host, infra.imap_port)
    client.login(account.address, account.password)
    return client


def fetch_all(infra: Infra, account: MailAccount, folder: str = "INBOX") -> list[bytes]:
    """Every message in a folder, read-only."""
    client = imap_login(infra, account)
    try:
        client.select(folder, readonly=True)
        _, data = client.uid("SEARCH", "ALL")
        uids = data[0].split() if data and data[0] else []
        messages: list[bytes] = []
        for uid in uids:
            _, parts = client.uid("FETCH", uid, "(BODY.PEEK[])")
            for part in parts:
                if isinstance(part, tuple):
                    messages.append(part[1])
        return messages
    finally:
        client.logout()


def flags_by_uid(infra: Infra, account: MailAccount, folder: str = "INBOX") -> dict[int, str]:
    """The flags of every message in a folder, keyed by UID, read without changing them."""
    client = imap_login(infra, account)
    try:
        client.select(folder, readonly=True)
        _, data = client.uid("FETCH", "1:*", "(FLAGS)")
        result: dict[int, str] = {}
        for line in data:
            if not isinstance(line, bytes) or b"UID" not in line:
                continue
            text = line.decode()
            uid = int(text.split("UID ", 1)[1].split()[0].rstrip(")"))
            result[uid] = text.split("FLAGS (", 1)[1].split(")", 1)[0]
        return result
    finally:
        client.logout()


def fill_inbox(infra: Infra, account: MailAccount, count: int, sender: str) -> list[str]:
    """`count` messages delivered into INBOX over one LMTP session; their Message-IDs."""
    message_ids: list[str] = []
    with smtplib.LMTP(infra.imap_host, infra.lmtp_port) as lmtp:
        for number in range(count):
            message = build_message(
                sender=sender,
                to=[account.address],
                subject=f"Message {number}",
                body=f"Body of message {number}\n" * 20,
            )
            lmtp.send_message(message, to_addrs=[account.address])
            message_ids.append(str(message["Message-ID"]))
    return message_ids
