"""A realistic mail corpus with the expected outcome of every message written down.

The workspace (`acme.test`) has three connected mailboxes: Olive and Sam (scope `all`)
and Cora (scope `client_only`). Its records:

- Northwind (`northwind.test`, `northwind.co.uk`): Anna (two addresses) and Ben; deals
  "NW renewal" (open, Anna), "NW expansion" (open, company only), "NW 2023" (won).
- Contoso (`contoso.test`): Carl; two open deals naming Carl ("pilot", "rollout").
- Fabrikam (`fabrikam.test`): no contacts; two open company deals, one lost.

Capture rules: `sent_and_received`, block list `blocked@contoso.test` and `@spam.test`.

Association rule for several open deals (documented in `association.linking`): a thread
gets every open deal of its matched contacts; only when those have none, every open deal
of its matched companies.

Each `CorpusMessage` says which thread it must land on (a label; same label, same
thread), whether it is stored, and the capture decision for each participant. Each
thread label says which records the thread ends up linked to. Messages are listed in
publishing order, which is deliberately not always the order they were written.
"""

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from mailsync_shared.contracts.mail import MailMessage
from mailsync_shared.ids import stable_id
from mailsync_shared.storage.raw_messages import raw_id_for

OLIVE = "olive@acme.test"
SAM = "sam@acme.test"
CORA = "cora@acme.test"
ANNA = "anna@northwind.test"
ANNA_UK = "anna.p@northwind.co.uk"
BEN = "ben@northwind.test"
CARL = "carl@contoso.test"
LARS = "lars@eu.fabrikam.test"
PETE = "pete@brightside.test"
JO = "jo.doe@gmail.com"
MAX = "max.mustermann@web.de"

CAPTURED = ("captured", "policy_sent_and_received")
EXISTING = ("existing", "existing_contact")
OWNER = ("skipped", "owner_address")
INTERNAL = ("skipped", "internal_domain")
FREE_MAIL = ("skipped", "free_mail_domain")
AUTOMATED = ("skipped", "automated_message")
ROLE = ("skipped", "role_address")

START = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


@dataclass
class CorpusMessage:
    key: str
    mail: MailMessage
    raw: bytes
    thread: str
    capture: dict[str, tuple[str, str]]
    stored: bool = True


@dataclass
class ThreadExpectation:
    contacts: set[str] = field(default_factory=set)
    companies: set[str] = field(default_factory=set)
    deals: set[str] = field(default_factory=set)
    why: str = ""


@dataclass
class Corpus:
    workspace_id: str
    mailboxes: list[dict[str, Any]]
    companies: list[dict[str, Any]]
    contacts: list[dict[str, Any]]
    deals: list[dict[str, Any]]
    rules: dict[str, Any]
    messages: list[CorpusMessage] = field(default_factory=list)
    threads: dict[str, ThreadExpectation] = field(default_factory=dict)

    def id(self, name: str) -> str:
        """The stored id of a seeded record (`anna`, `northwind`, `nw-renewal`, ...)."""
        return f"{self.workspace_id}-{name}"

    def captured_id(self, address: str) -> str:
        return stable_id("captured-contact", self.workspace_id, address)

    @property
    def stored_messages(self) -> dict[str, CorpusMessage]:
        """The messages expected in the store, by `Message-ID` (the last copy listed wins)."""
        return {m.mail.message_id: m for m in self.messages if m.stored}

    def skipped(self, mailbox_id: str) -> int:
        return len(
            {
                m.mail.message_id
                for m in self.messages
                if not m.stored and m.mail.mailbox_id == mailbox_id
            }
        )


class _Builder:
    def __init__(self, workspace_id: str) -> None:
        self.workspace_id = workspace_id
        self.counter = itertools.count(1)
        self.known: set[str] = {ANNA, ANNA_UK, BEN, CARL}
        self.corpus = Corpus(
            workspace_id=workspace_id,
            mailboxes=[
                self._mailbox("olive", OLIVE, "all"),
                self._mailbox("sam", SAM, "all"),
                self._mailbox("cora", CORA, "client_only"),
            ],
            companies=[
                {
                    "_id": self.rid("northwind"),
                    "name": "Northwind",
                    "domains": ["northwind.test", "northwind.co.uk"],
                },
                {"_id": self.rid("contoso"), "name": "Contoso", "domains": ["contoso.test"]},
                {"_id": self.rid("fabrikam"), "name": "Fabrikam", "domains": ["fabrikam.test"]},
            ],
            contacts=[
                {
                    "_id": self.rid("anna"),
                    "name": "Anna Berg",
                    "emails": [ANNA, ANNA_UK],
                    "company_id": self.rid("northwind"),
                },
                {
                    "_id": self.rid("ben"),
                    "name": "Ben Okafor",
                    "emails": [BEN],
                    "company_id": self.rid("northwind"),
                },
                {
                    "_id": self.rid("carl"),
                    "name": "Carl Diaz",
                    "emails": [CARL],
                    "company_id": self.rid("contoso"),
                },
                # Known from a trade fair under his company address; writes from web.de.
                {
                    "_id": self.rid("max"),
                    "name": "Max Mustermann",
                    "emails": ["max@mustermann.test"],
                },
            ],
            deals=[
                {
                    "_id": self.rid("nw-renewal"),
                    "name": "NW renewal",
                    "status": "open",
                    "contact_ids": [self.rid("anna")],
                    "company_id": self.rid("northwind"),
                },
                {
                    "_id": self.rid("nw-expansion"),
                    "name": "NW expansion",
                    "status": "open",
                    "contact_ids": [],
                    "company_id": self.rid("northwind"),
                },
                {
                    "_id": self.rid("nw-2023"),
                    "name": "NW 2023",
                    "status": "won",
                    "contact_ids": [self.rid("anna")],
                    "company_id": self.rid("northwind"),
                },
                {
                    "_id": self.rid("co-pilot"),
                    "name": "Contoso pilot",
                    "status": "open",
                    "contact_ids": [self.rid("carl")],
                    "company_id": self.rid("contoso"),
                },
                {
                    "_id": self.rid("co-rollout"),
                    "name": "Contoso rollout",
                    "status": "open",
                    "contact_ids": [self.rid("carl")],
                    "company_id": self.rid("contoso"),
                },
                {
                    "_id": self.rid("fa-a"),
                    "name": "Fabrikam A",
                    "status": "open",
                    "contact_ids": [],
                    "company_id": self.rid("fabrikam"),
                },
                {
                    "_id": self.rid("fa-b"),
                    "name": "Fabrikam B",
                    "status": "open",
                    "contact_ids": [],
                    "company_id": self.rid("fabrikam"),
                },
                {
                    "_id": self.rid("fa-lost"),
                    "name": "Fabrikam lost",
                    "status": "lost",
                    "contact_ids": [],
                    "company_id": self.rid("fabrikam"),
                },
            ],
            rules={
                "policy": "sent_and_received",
                "blocked": ["blocked@contoso.test", "@spam.test"],
            },
        )

    def rid(self, name: str) -> str:
        return f"{self.workspace_id}-{name}"

    def _mailbox(self, name: str, address: str, scope: str) -> dict[str, Any]:
        account = {"host": "127.0.0.1", "port": 10143, "username": address}
        return {
            "_id": self.rid(f"mb-{name}"),
            "address": address,
            "display_name": name.title(),
            "owner_user_id": f"user-{name}",
            "imap": account,
            "smtp": {**account, "port": 10587},
            "sync": {"scope": scope, "backfill_days": 30},
            "visibility": "metadata",
        }

    def mailbox_of(self, owner: str) -> str:
        return self.rid(f"mb-{owner.split('@')[0]}")

    def thread(
        self,
        label: str,
        *,
        contacts: tuple[str, ...] = (),
        companies: tuple[str, ...] = (),
        deals: tuple[str, ...] = (),
        why: str = "",
    ) -> str:
        self.corpus.threads[label] = ThreadExpectation(
            contacts={
                c if "@" not in c else stable_id("captured-contact", self.workspace_id, c)
                for c in (self.rid(x) if "@" not in x else x for x in contacts)
            },
            companies={self.rid(c) for c in companies},
            deals={self.rid(d) for d in deals},
            why=why,
        )
        return label

    def decide(self, address: str, owner: str, automated: bool = False) -> tuple[str, str]:
        """The decision capture must make, written as the rules read (see capture_policy.rules)."""
        if address in {OLIVE, SAM, CORA}:
            return OWNER
        if address in self.known:
            return EXISTING
        if address == "blocked@contoso.test":
            return ("skipped", "blocked_address")
        if address.endswith("@spam.test"):
            return ("skipped", "blocked_domain")
        if automated:
            return AUTOMATED
        if address.split("@")[0] in {"mailer-daemon", "postmaster"} or address.startswith(
            "noreply"
        ):
            return ROLE
        if address.endswith("@acme.test"):
            return INTERNAL
        if address.split("@")[1] in {"gmail.com", "web.de", "yahoo.com", "outlook.com"}:
            return FREE_MAIL
        self.known.add(address)
        return CAPTURED

    def message(
        self,
        key: str,
        thread: str,
        *,
        sender: tuple[str, str],
        to: list[tuple[str, str]],
        subject: str,
        at: datetime,
        owner: str = OLIVE,
        cc: list[tuple[str, str]] | None = None,
        in_reply_to: str | None = None,
        references: list[str] | None = None,
        headers: dict[str, str] | None = None,
        provider_thread_id: str | None = None,
        message_id: str | None = None,
        stored: bool = True,
        expect: dict[str, tuple[str, str]] | None = None,
    ) -> CorpusMessage:
        number = next(self.counter)
        message_id = message_id or f"<c{number}.{self.workspace_id[-8:]}@{sender[0].split('@')[1]}>"
        email = EmailMessage()
        email["From"] = f"{sender[1]} <{sender[0]}>" if sender[1] else sender[0]
        email["To"] = ", ".join(f"{n} <{a}>" if n else a for a, n in to)
        if cc:
            email["Cc"] = ", ".join(f"{n} <{a}>" if n else a for a, n in cc)
        email["Subject"] = subject
        email["Date"] = format_datetime(at)
        email["Message-ID"] = message_id
        if in_reply_to:
            email["In-Reply-To"] = in_reply_to
        if references:
            email["References"] = " ".join(references)
        for name, value in (headers or {}).items():
            email[name] = value
        email.set_content(f"{subject}\n\nMessage {number} of the corpus ({key}).\n")
        raw = email.as_bytes()
        hints = headers or {}
        automation = {
            "auto_submitted": hints.get("Auto-Submitted"),
            "list_unsubscribe": "List-Unsubscribe" in hints,
            "precedence": hints.get("Precedence"),
        }
        mailbox_id = self.mailbox_of(owner)
        mail = MailMessage.model_validate(
            {
                "mailbox_id": mailbox_id,
                "owner_address": owner,
                "direction": "sent" if sender[0] == owner else "received",
                "source": {
                    "mailbox_id": mailbox_id,
                    "folder": "Sent" if sender[0] == owner else "INBOX",
                    "folder_role": "sent" if sender[0] == owner else "inbox",
                    "uidvalidity": 1,
                    "uid": number,
                },
                "raw_id": raw_id_for(self.workspace_id, raw),
                "size": len(raw),
                "message_id": message_id,
                "in_reply_to": [in_reply_to] if in_reply_to else [],
                "references": references or [],
                "subject": subject,
                "date": at.isoformat(),
                "from": {"address": sender[0], "name": sender[1]},
                "to": [{"address": a, "name": n} for a, n in to],
                "cc": [{"address": a, "name": n} for a, n in cc or []],
                "automation": automation,
                "provider_thread_id": provider_thread_id,
            }
        )
        automated = bool(
            automation["list_unsubscribe"]
            or automation["precedence"] in {"bulk", "list", "junk"}
            or (automation["auto_submitted"] or "no") != "no"
        )
        capture = (
            expect
            if expect is not None
            else {p.address: self.decide(p.address, owner, automated) for p in mail.participants()}
        )
        entry = CorpusMessage(key, mail, raw, thread, capture, stored)
        self.corpus.messages.append(entry)
        return entry

    def reply(
        self,
        key: str,
        thread: str,
        parent: CorpusMessage,
        *,
        sender: tuple[str, str],
        to: list[tuple[str, str]],
        subject: str,
        at: datetime,
        cc: list[tuple[str, str]] | None = None,
        message_id: str | None = None,
    ) -> CorpusMessage:
        """A reply to `parent`: In-Reply-To its Message-ID, References its chain and it."""
        return self.message(
            key,
            thread,
            sender=sender,
            to=to,
            cc=cc,
            subject=subject,
            at=at,
            in_reply_to=parent.mail.message_id,
            references=[*parent.mail.references, parent.mail.message_id],
            message_id=message_id,
        )


def build_corpus(workspace_id: str) -> Corpus:
    b = _Builder(workspace_id)
    day = timedelta(days=1)
    hour = timedelta(hours=1)
    me = (OLIVE, "Olive Stone")
    anna, anna_uk = (ANNA, "Anna Berg"), (ANNA_UK, "Anna Berg")
    ben, carl = (BEN, "Ben Okafor"), (CARL, "Carl Diaz")

    # 1. Client conversations with Anna: 12 threads of 4 messages. Anna's open deal only.
    #    In threads 3, 6 and 9 the first reply is published before its parent.
    for n in range(12):
        label = b.thread(
            f"anna-{n}",
            contacts=("anna",),
            companies=("northwind",),
            deals=("nw-renewal",),
            why="contact by address; contact's open deal",
        )
        at = START + n * day
        subject = f"Renewal topic {n}"
        first = b.message(
            f"anna-{n}/1",
            label,
            sender=me,
            to=[anna],
            subject=subject,
            at=at,
            message_id=f"<anna{n}.{workspace_id[-8:]}@acme.test>",
        )
        second = b.reply(
            f"anna-{n}/2",
            label,
            first,
            sender=anna,
            to=[me],
            subject=f"Re: {subject}",
            at=at + hour,
            message_id=f"<anna{n}r.{workspace_id[-8:]}@northwind.test>",
        )
        if n % 3 == 0 and n:
            messages = b.corpus.messages
            messages[-2], messages[-1] = messages[-1], messages[-2]
        third = b.reply(
            f"anna-{n}/3",
            label,
            second,
            sender=me,
            to=[anna],
            subject=f"Re: {subject}",
            at=at + 2 * hour,
        )
        b.reply(
            f"anna-{n}/4",
            label,
            third,
            sender=anna_uk,
            to=[me],
            subject=f"RE: {subject}",
            at=at + 3 * hour,
        )

    # 2. Ben (no deal of his own): every open deal of Northwind, the documented fallback.
    for n in range(8):
        label = b.thread(
            f"ben-{n}",
            contacts=("ben",),
            companies=("northwind",),
            deals=("nw-renewal", "nw-expansion"),
            why="contact without deals: the company's open deals",
        )
        at = START + n * day + 4 * hour
        first = b.message(
            f"ben-{n}/1", label, sender=ben, to=[me], subject=f"Delivery question {n}", at=at
        )
        second = b.reply(
            f"ben-{n}/2",
            label,
            first,
            sender=me,
            to=[ben],
            subject=f"Re: Delivery question {n}",
            at=at + hour,
        )
        b.reply(
            f"ben-{n}/3",
            label,
            second,
            sender=ben,
            to=[me],
            subject=f"Re: Delivery question {n}",
            at=at + 2 * hour,
        )

    # 3. Carl with two open deals: both are linked. A colleague is captured on the way.
    for n in range(8):
        label = b.thread(
            f"carl-{n}",
            contacts=("carl", "nina@contoso.test") if n == 0 else ("carl",),
            companies=("contoso",),
            deals=("co-pilot", "co-rollout"),
            why="several open deals of the contact: all of them",
        )
        at = START + n * day + 5 * hour
        cc = [("nina@contoso.test", "Nina Park")] if n == 0 else None
        first = b.message(
            f"carl-{n}/1", label, sender=me, to=[carl], cc=cc, subject=f"Pilot status {n}", at=at
        )
        second = b.reply(
            f"carl-{n}/2",
            label,
            first,
            sender=carl,
            to=[me],
            cc=cc,
            subject=f"Re: Pilot status {n}",
            at=at + hour,
        )
        b.reply(
            f"carl-{n}/3",
            label,
            second,
            sender=me,
            to=[carl],
            subject=f"Re: Pilot status {n}",
            at=at + 2 * hour,
        )

    # 4. "Invoice" recurs between the same people without reply markers: never merged.
    for n in range(6):
        label = b.thread(
            f"invoice-{n}",
            contacts=("carl",),
            companies=("contoso",),
            deals=("co-pilot", "co-rollout"),
            why="same subject, no reply marker: own thread",
        )
        b.message(
            f"invoice-{n}", label, sender=carl, to=[me], subject="Invoice", at=START + n * 7 * day
        )

    # 5. A client mail client that drops the headers: "Re:" with a shared participant joins
    #    within 30 days (guarded subject fallback), not 60 days later.
    review = b.thread(
        "review", contacts=("carl",), companies=("contoso",), deals=("co-pilot", "co-rollout")
    )
    b.message("review/1", review, sender=me, to=[carl], subject="Quarterly review", at=START)
    b.message(
        "review/2", review, sender=carl, to=[me], subject="Re: Quarterly review", at=START + 2 * day
    )
    late = b.thread(
        "review-late",
        contacts=("carl",),
        companies=("contoso",),
        deals=("co-pilot", "co-rollout"),
        why="subject match outside 30 days: new thread",
    )
    b.message(
        "review/late",
        late,
        sender=carl,
        to=[me],
        subject="Re: Quarterly review",
        at=START + 70 * day,
    )

    # 6. Fabrikam: Lars writes from a subdomain; he is captured (linked to Fabrikam by the
    #    parent domain) and has no deals, so both open company deals are linked.
    for n in range(5):
        label = b.thread(
            f"lars-{n}",
            contacts=(LARS,),
            companies=("fabrikam",),
            deals=("fa-a", "fa-b"),
            why="company by parent domain; company's open deals",
        )
        first = b.message(
            f"lars-{n}/1",
            label,
            sender=(LARS, "Lars Holm"),
            to=[me],
            subject=f"Integration {n}",
            at=START + n * day + 6 * hour,
        )
        b.reply(
            f"lars-{n}/2",
            label,
            first,
            sender=me,
            to=[(LARS, "Lars Holm")],
            subject=f"Re: Integration {n}",
            at=START + n * day + 7 * hour,
        )

    # 7. A new business contact: captured from Olive's first message, thread linked to him.
    for n in range(4):
        label = b.thread(f"pete-{n}", contacts=(PETE,), why="captured contact, no company")
        first = b.message(
            f"pete-{n}/1",
            label,
            sender=me,
            to=[(PETE, "Pete Lang")],
            subject=f"Introduction {n}",
            at=START + n * day + 8 * hour,
        )
        b.reply(
            f"pete-{n}/2",
            label,
            first,
            sender=(PETE, "Pete Lang"),
            to=[me],
            subject=f"Re: Introduction {n}",
            at=START + n * day + 9 * hour,
        )

    # 8. Free-mail people: never captured, threads unassigned.
    for n in range(10):
        person = (JO, "Jo Doe") if n % 2 else (MAX, "Max Mustermann")
        label = b.thread(f"free-{n}", why="free-mail: unassigned")
        first = b.message(
            f"free-{n}/1",
            label,
            sender=person,
            to=[me],
            subject=f"Question about your product {n}",
            at=START + n * day + 10 * hour,
        )
        b.reply(
            f"free-{n}/2",
            label,
            first,
            sender=me,
            to=[person],
            subject=f"Re: Question about your product {n}",
            at=START + n * day + 11 * hour,
        )

    # 9. Newsletters (List-Unsubscribe, Precedence: bulk): automated, each its own thread.
    for n in range(40):
        label = b.thread(f"news-{n}", why="newsletter: unassigned")
        b.message(
            f"news-{n}",
            label,
            sender=("news@updates.test", "Updates Weekly"),
            to=[me],
            subject=f"Weekly digest #{n}",
            at=START + n * day,
            headers={"List-Unsubscribe": "<mailto:unsubscribe@updates.test>", "Precedence": "bulk"},
        )

    # 10. Notifications: Auto-Submitted; one provider thread groups three of them.
    for n in range(30):
        grouped = n < 3
        label = b.thread(
            "notify-build" if grouped else f"notify-{n}", why="notification: unassigned"
        )
        b.message(
            f"notify-{n}",
            label,
            sender=("noreply@ci.devtools.test", "CI"),
            to=[me],
            subject=f"Build {n} failed" if not grouped else "Build pipeline",
            at=START + n * hour,
            headers={"Auto-Submitted": "auto-generated"},
            provider_thread_id="gm-build-1" if grouped else None,
        )

    # 11. Bounces from mailer-daemon (no automation headers): role address.
    for n in range(5):
        label = b.thread(f"bounce-{n}", why="bounce: unassigned")
        b.message(
            f"bounce-{n}",
            label,
            sender=("mailer-daemon@mx.hosting.test", ""),
            to=[me],
            subject=f"Undelivered Mail Returned to Sender {n}",
            at=START + n * day + 12 * hour,
        )

    # 12. Internal mail between Olive and Sam, seen in both mailboxes: one message, two
    #     mailbox links; both are owners of connected mailboxes, never contacts.
    for n in range(15):
        label = b.thread(f"internal-{n}", why="internal: unassigned")
        at = START + n * day + 13 * hour
        mid = f"<int{n}.{workspace_id[-8:]}@acme.test>"
        b.message(
            f"internal-{n}/olive",
            label,
            sender=me,
            to=[(SAM, "Sam Reed")],
            subject=f"Team sync {n}",
            at=at,
            message_id=mid,
            expect={OLIVE: OWNER, SAM: OWNER},
        )
        b.message(
            f"internal-{n}/sam",
            label,
            sender=me,
            to=[(SAM, "Sam Reed")],
            subject=f"Team sync {n}",
            at=at,
            owner=SAM,
            message_id=mid,
            expect={OLIVE: OWNER, SAM: OWNER},
        )

    #     Mail to a colleague without a connected mailbox: internal, never captured.
    for n in range(5):
        label = b.thread(f"colleague-{n}", why="internal colleague: unassigned")
        b.message(
            f"colleague-{n}",
            label,
            sender=me,
            to=[("tom@acme.test", "Tom Hill")],
            subject=f"Lunch {n}",
            at=START + n * day + 14 * hour,
        )

    # 13. Forwards. Olive forwards Anna's first thread to Sam without headers: a new,
    #     internal thread. Anna forwards it to Ben with References, and Ben writes to
    #     Olive: it joins the original thread, which now links Ben too (Anna's deal only).
    original = next(m for m in b.corpus.messages if m.key == "anna-0/1")
    fwd = b.thread("forward-internal", why="forward without headers to a colleague: own thread")
    b.message(
        "forward/internal-olive",
        fwd,
        sender=me,
        to=[(SAM, "Sam Reed")],
        subject="Fwd: Renewal topic 0",
        at=START + 20 * day,
        message_id=f"<fwd1.{workspace_id[-8:]}@acme.test>",
        expect={OLIVE: OWNER, SAM: OWNER},
    )
    b.message(
        "forward/internal-sam",
        fwd,
        sender=me,
        to=[(SAM, "Sam Reed")],
        subject="Fwd: Renewal topic 0",
        at=START + 20 * day,
        owner=SAM,
        message_id=f"<fwd1.{workspace_id[-8:]}@acme.test>",
        expect={OLIVE: OWNER, SAM: OWNER},
    )
    b.corpus.threads["anna-0"].contacts.add(b.rid("ben"))
    b.message(
        "forward/client",
        "anna-0",
        sender=ben,
        to=[me],
        cc=[anna],
        subject="Fwd: Renewal topic 0",
        at=START + 21 * day,
        references=[original.mail.message_id],
    )

    # 14. A parent that never arrives: two replies to it share a thread.
    missing = f"<never-fetched.{workspace_id[-8:]}@northwind.test>"
    site = b.thread(
        "site-visit",
        contacts=("ben",),
        companies=("northwind",),
        deals=("nw-renewal", "nw-expansion"),
        why="missing parent known by reference",
    )
    b.message(
        "site/1",
        site,
        sender=ben,
        to=[me],
        subject="Re: Site visit",
        at=START + 3 * day,
        in_reply_to=missing,
        references=[missing],
    )
    b.message(
        "site/2",
        site,
        sender=me,
        to=[ben],
        subject="Re: Site visit",
        at=START + 3 * day + hour,
        in_reply_to=missing,
        references=[missing],
    )

    # 15. Block list, and a spammer.
    blocked = b.thread(
        "blocked",
        contacts=("carl",),
        companies=("contoso",),
        deals=("co-pilot", "co-rollout"),
        why="blocked address is not captured, Carl still links",
    )
    b.message(
        "blocked/1",
        blocked,
        sender=("blocked@contoso.test", "Old Account"),
        to=[me],
        cc=[carl],
        subject="Access request",
        at=START + 4 * day,
    )
    spam = b.thread("spam", why="blocked domain: unassigned")
    b.message(
        "spam/1",
        spam,
        sender=("x@spam.test", "Winner"),
        to=[me],
        subject="You won",
        at=START + 4 * day,
    )

    # 16. Cora's client-only mailbox: only mail matching a record is stored.
    cora = (CORA, "Cora Lin")
    b.thread("cora-anna", contacts=("anna",), companies=("northwind",), deals=("nw-renewal",))
    b.message(
        "cora/anna",
        "cora-anna",
        sender=anna,
        to=[cora],
        subject="Hello Cora",
        at=START + 5 * day,
        owner=CORA,
    )
    # A machine sender at a client's domain is never linked to the company by domain alone
    # (association/automated.py), so nothing matches and the mail is not stored.
    b.message(
        "cora/fabrikam",
        "-",
        sender=("noreply@fabrikam.test", "Fabrikam"),
        to=[cora],
        subject="Your account",
        at=START + 5 * day,
        owner=CORA,
        stored=False,
    )
    for n in range(6):
        b.message(
            f"cora/news-{n}",
            "-",
            sender=("news@updates.test", "Updates Weekly"),
            to=[cora],
            subject=f"Digest {n}",
            at=START + n * day,
            owner=CORA,
            headers={"List-Unsubscribe": "<mailto:u@updates.test>"},
            stored=False,
        )
    for n in range(4):
        b.message(
            f"cora/free-{n}",
            "-",
            sender=(MAX, "Max Mustermann"),
            to=[cora],
            subject=f"Hi {n}",
            at=START + n * day,
            owner=CORA,
            stored=False,
        )
    return b.corpus
