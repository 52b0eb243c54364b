"""A demo workspace with a demo mailbox holding a few dozen realistic messages.

The mail goes into the local Dovecot the way a provider would put it there: client mail is
delivered over LMTP into the owner's INBOX, the owner's own mail is appended to Sent. The
workspace, its records and the mailbox connection are made through the public API only.
"""

import imaplib
import smtplib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import httpx

from mailsync_devmail.accounts import add_account

OWNER = "dana@acme.test"
OWNER_NAME = "Dana Whitfield"
PASSWORD = "demo-password"  # noqa: S105 - demo account on the local mail server


@dataclass(frozen=True)
class Person:
    address: str
    name: str


GLOBEX_CTO = Person("hank.scorpio@globex.test", "Hank Scorpio")
GLOBEX_BUYER = Person("frank.grimes@globex.test", "Frank Grimes")
INITECH_PM = Person("bill.lumbergh@initech.test", "Bill Lumbergh")
INITECH_ENG = Person("peter.gibbons@initech.test", "Peter Gibbons")
FREELANCER = Person("maria.lopez@gmail.com", "Maria Lopez")
NEWSLETTER = Person("news@saasweekly.test", "SaaS Weekly")
COLLEAGUE = Person("sam@acme.test", "Sam Patel")
NOTIFIER = Person("no-reply@billing.stripe-like.test", "Billing")
UMBRELLA_CFO = Person("alice.wong@umbrella.test", "Alice Wong")
PEOPLE = (
    GLOBEX_CTO,
    GLOBEX_BUYER,
    INITECH_PM,
    INITECH_ENG,
    FREELANCER,
    NEWSLETTER,
    COLLEAGUE,
    NOTIFIER,
    UMBRELLA_CFO,
)


@dataclass
class Conversation:
    subject: str
    client: Person
    turns: list[tuple[bool, str]]
    cc: list[Person] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


def _turns(*texts: str) -> list[tuple[bool, str]]:
    """Alternating turns, the client first; True marks the owner's own messages."""
    return [(index % 2 == 1, text) for index, text in enumerate(texts)]


CONVERSATIONS = [
    Conversation(
        "Pilot rollout for the Globex sales team",
        GLOBEX_CTO,
        _turns(
            "Hi Dana,\n\nWe'd like to start a pilot with 40 seats next month. Can you send a "
            "proposal with onboarding included?\n\nHank",
            "Hi Hank,\n\nGreat news. Proposal attached by Friday; onboarding is two sessions "
            "of 90 minutes.\n\nDana",
            "Perfect. Please copy Frank, he runs procurement.\n\nHank",
            "Will do. Frank, welcome aboard.\n\nDana",
            "Thanks both. We need the DPA signed before the pilot starts.\n\nHank",
        ),
        cc=[GLOBEX_BUYER],
    ),
    Conversation(
        "Globex purchase order 2026-118",
        GLOBEX_BUYER,
        _turns(
            "Dana,\n\nPO 2026-118 is approved for the pilot. Invoice to ap@globex.test please."
            "\n\nFrank",
            "Thanks Frank, invoice goes out today.\n\nDana",
            "Received, thank you.\n\nFrank",
        ),
    ),
    Conversation(
        "Initech renewal and the TPS report export",
        INITECH_PM,
        _turns(
            "Hello Dana,\n\nYeah, if you could go ahead and include the TPS export in the "
            "renewal, that would be great.\n\nBill",
            "Hi Bill,\n\nThe export is on the roadmap for Q1; I can add it to the renewal as a "
            "committed item.\n\nDana",
            "Mmm-kay. Let's get the renewal signed by the 15th.\n\nBill",
            "Contract is in your inbox for signature.\n\nDana",
        ),
    ),
    Conversation(
        "Bug: duplicate contacts after import",
        INITECH_ENG,
        _turns(
            "Hi Dana,\n\nAfter the CSV import we see two contacts for the same person when "
            "the address has upper-case letters. Known issue?\n\nPeter",
            "Hi Peter,\n\nYes, addresses are now compared lower-cased; re-running the import "
            "merges them.\n\nDana",
            "Confirmed, all merged. Thanks!\n\nPeter",
        ),
    ),
    Conversation(
        "Freelance design work for the landing page",
        FREELANCER,
        _turns(
            "Hi Dana,\n\nI can deliver the landing page designs in two weeks. My day rate is "
            "attached.\n\nMaria",
            "Hi Maria,\n\nSounds good, let's start Monday.\n\nDana",
            "Great, see you Monday.\n\nMaria",
        ),
    ),
    Conversation(
        "This week in SaaS: pricing pages that convert",
        NEWSLETTER,
        [(False, "Top stories this week: pricing pages, churn, and onboarding emails.")],
        headers={
            "List-Unsubscribe": "<mailto:unsubscribe@saasweekly.test>",
            "Precedence": "bulk",
        },
    ),
    Conversation(
        "SaaS Weekly: the state of CRM integrations",
        NEWSLETTER,
        [(False, "Top stories: CRM integrations, email sync, and event-driven architectures.")],
        headers={
            "List-Unsubscribe": "<mailto:unsubscribe@saasweekly.test>",
            "Precedence": "bulk",
        },
    ),
    Conversation(
        "Globex SSO setup questions",
        GLOBEX_CTO,
        _turns(
            "Dana,\n\nOur IT team asks whether SAML SSO works with Okta and whether SCIM "
            "provisioning is included in the pilot.\n\nHank",
            "Hi Hank,\n\nYes to both: Okta SAML is supported and SCIM is included. I'll send "
            "the setup guide.\n\nDana",
            "Thanks, forwarded to IT.\n\nHank",
        ),
    ),
    Conversation(
        "Umbrella Corp: security questionnaire",
        UMBRELLA_CFO,
        _turns(
            "Hello Dana,\n\nBefore we evaluate, could you complete our vendor security "
            "questionnaire (attached)?\n\nAlice Wong\nCFO, Umbrella",
            "Hi Alice,\n\nCompleted questionnaire attached, plus our SOC 2 report under "
            "NDA.\n\nDana",
            "Thank you, our security team will review this week.\n\nAlice",
            "Great, happy to set up a call with our security lead if useful.\n\nDana",
        ),
    ),
    Conversation(
        "Your invoice INV-20931 is paid",
        NOTIFIER,
        [(False, "Payment of 1,200.00 received for invoice INV-20931. No reply needed.")],
        headers={"Auto-Submitted": "auto-generated"},
    ),
    Conversation(
        "Your invoice INV-20977 is paid",
        NOTIFIER,
        [(False, "Payment of 340.00 received for invoice INV-20977. No reply needed.")],
        headers={"Auto-Submitted": "auto-generated"},
    ),
    Conversation(
        "Initech onboarding schedule",
        INITECH_ENG,
        _turns(
            "Hi Dana,\n\nCan we move the second onboarding session to Wednesday 3pm?\n\nPeter",
            "Sure, moved. Calendar invite updated.\n\nDana",
        ),
    ),
    Conversation(
        "Internal: Q3 pipeline review",
        COLLEAGUE,
        _turns(
            "Dana, can you bring the Globex and Initech numbers to Thursday's review?\n\nSam",
            "Sure, I'll have both in the deck.\n\nDana",
        ),
    ),
]


def _message(
    conversation: Conversation,
    owner_speaks: bool,
    body: str,
    when: datetime,
    parents: list[str],
) -> EmailMessage:
    sender = Person(OWNER, OWNER_NAME) if owner_speaks else conversation.client
    recipient = conversation.client if owner_speaks else Person(OWNER, OWNER_NAME)
    message = EmailMessage()
    message["From"] = f"{sender.name} <{sender.address}>"
    message["To"] = f"{recipient.name} <{recipient.address}>"
    if conversation.cc and parents:
        message["Cc"] = ", ".join(f"{p.name} <{p.address}>" for p in conversation.cc)
    message["Subject"] = ("Re: " if parents else "") + conversation.subject
    message["Date"] = format_datetime(when)
    message["Message-ID"] = make_msgid(domain=sender.address.split("@")[1])
    if parents:
        message["In-Reply-To"] = parents[-1]
        message["References"] = " ".join(parents)
    for name, value in conversation.headers.items():
        message[name] = value
    message.set_content(body)
    return message


def create_mail_accounts(users_file: Path) -> None:
    add_account(users_file, OWNER, PASSWORD)
    for person in PEOPLE:
        add_account(users_file, person.address, PASSWORD)


def fill_mailbox(imap_host: str, imap_port: int, lmtp_port: int, now: datetime) -> int:
    """Put the demo conversations into the owner's INBOX and Sent; return the count."""
    count = 0
    imap = imaplib.IMAP4(imap_host, imap_port)
    imap.login(OWNER, PASSWORD)
    try:
        with smtplib.LMTP(imap_host, lmtp_port) as lmtp:
            for index, conversation in enumerate(CONVERSATIONS):
                start = now - timedelta(days=2 * (len(CONVERSATIONS) - index) + 1)
                parents: list[str] = []
                for turn, (owner_speaks, body) in enumerate(conversation.turns):
                    when = start + timedelta(hours=5 * turn)
                    message = _message(conversation, owner_speaks, body, when, parents)
                    if owner_speaks:
                        imap.append(
                            "Sent", r"(\Seen)", imaplib.Time2Internaldate(when), message.as_bytes()
                        )
                    else:
                        lmtp.send_message(message, to_addrs=[OWNER])
                    parents.append(str(message["Message-ID"]))
                    count += 1
    finally:
        imap.logout()
    return count


@dataclass(frozen=True)
class DemoWorkspace:
    workspace_id: str
    api_key: str
    mailbox_id: str
    contact_id: str
    message_count: int


def seed(
    api_url: str, users_file: Path, imap_host: str, imap_port: int, lmtp_port: int
) -> DemoWorkspace:
    create_mail_accounts(users_file)
    count = fill_mailbox(imap_host, imap_port, lmtp_port, datetime.now(UTC))
    with httpx.Client(base_url=api_url, timeout=30) as client:
        created = client.post(
            "/v1/workspaces", json={"name": "Acme Demo", "domains": ["acme.test"]}
        )
        created.raise_for_status()
        workspace = created.json()
        client.headers["Authorization"] = f"Bearer {workspace['api_key']}"
        globex = _post(client, "/v1/companies", {"name": "Globex", "domains": ["globex.test"]})
        initech = _post(client, "/v1/companies", {"name": "Initech", "domains": ["initech.test"]})
        hank = _post(
            client,
            "/v1/contacts",
            {"name": GLOBEX_CTO.name, "emails": [GLOBEX_CTO.address], "company_id": globex["id"]},
        )
        _post(
            client,
            "/v1/contacts",
            {"name": INITECH_PM.name, "emails": [INITECH_PM.address], "company_id": initech["id"]},
        )
        _post(
            client,
            "/v1/deals",
            {
                "name": "Globex pilot",
                "stage": "proposal",
                "company_id": globex["id"],
                "contact_ids": [hank["id"]],
                "value": 24000,
            },
        )
        server = {"host": imap_host, "security": "none", "username": OWNER, "password": PASSWORD}
        mailbox = _post(
            client,
            "/v1/mailboxes",
            {
                "address": OWNER,
                "display_name": OWNER_NAME,
                "imap": {**server, "port": imap_port},
                "smtp": {**server, "port": 10587},
                "sync": {"backfill_days": 90},
            },
        )
    return DemoWorkspace(workspace["id"], workspace["api_key"], mailbox["id"], hank["id"], count)


def _post(client: httpx.Client, path: str, body: dict[str, object]) -> dict[str, str]:
    response = client.post(path, json=body)
    if response.status_code >= 400:
        raise RuntimeError(f"POST {path} failed: {response.status_code} {response.text}")
    result: dict[str, str] = response.json()
    return result


def wait_for_timeline(api_url: str, demo: DemoWorkspace, timeout: float = 60.0) -> int:
    """Wait until the demo contact's timeline shows mail; return the number of threads."""
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {demo.api_key}"}
    while time.monotonic() < deadline:
        response = httpx.get(
            f"{api_url}/v1/contacts/{demo.contact_id}/timeline", headers=headers, timeout=10
        )
        if response.status_code == 200 and response.json().get("items"):
            return len(response.json()["items"])
        time.sleep(0.5)
    return 0
