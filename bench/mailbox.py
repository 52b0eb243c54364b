"""A benchmark mailbox on the local Dovecot, filled with realistic client mail."""

import smtplib
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from imapclient import IMAPClient

from mailsync_devmail.accounts import add_account

CLIENTS = [f"client{index}@customer{index % 7}.test" for index in range(20)]
PARAGRAPH = (
    "Thanks for the call earlier. As discussed, we would like to move forward with the pilot "
    "for the sales team, starting with the onboarding sessions next week. Could you confirm "
    "the pricing for the additional seats and the timeline for the data import? "
)


def message(owner: str, index: int, now: datetime) -> EmailMessage:
    sender = CLIENTS[index % len(CLIENTS)]
    mail = EmailMessage()
    mail["From"] = f"Client {index % len(CLIENTS)} <{sender}>"
    mail["To"] = owner
    mail["Subject"] = f"Pilot planning, part {index}"
    mail["Date"] = format_datetime(now - timedelta(minutes=index))
    mail["Message-ID"] = make_msgid(domain=sender.split("@")[1])
    mail.set_content((PARAGRAPH * 6) + f"\n\nReference {index}\n")
    return mail


def create_filled_mailbox(
    users_file: Path, host: str, lmtp_port: int, count: int
) -> tuple[str, str]:
    """A fresh account whose INBOX holds `count` messages; returns (address, password)."""
    owner = f"bench-{uuid.uuid4().hex[:8]}@acme.test"
    password = uuid.uuid4().hex
    add_account(users_file, owner, password)
    now = datetime.now(UTC)
    with smtplib.LMTP(host, lmtp_port) as lmtp:
        for index in range(count):
            lmtp.send_message(message(owner, index, now), to_addrs=[owner])
    return owner, password


def raw_fetch_rate(host: str, port: int, owner: str, password: str, batch: int = 200) -> float:
    """Messages per second for read-only UID FETCH of whole messages, in batches."""
    with IMAPClient(host, port=port, ssl=False) as client:
        client.login(owner, password)
        client.select_folder("INBOX", readonly=True)
        uids = client.search("ALL")
        started = time.perf_counter()
        fetched = 0
        for offset in range(0, len(uids), batch):
            fetched += len(client.fetch(uids[offset : offset + batch], ["BODY.PEEK[]"]))
        elapsed = time.perf_counter() - started
    return fetched / elapsed
