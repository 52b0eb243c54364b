"""309 real-world messages from public MIME-parser test suites, read faithfully end to end.

Each message of `tests/data/real_world` (sources and licences in its README.md) is delivered
into Dovecot as it is, backfilled and logged by all five services, and the logged message is
compared field by field (subject, from, to, cc, date, Message-ID, body text present) with two
readings that owe nothing to Mailsync's header reader: Dovecot's ENVELOPE over IMAP, and the
expected values the stalwart suite ships. Every remaining disagreement is listed below with
its reason; a new one, or one that went away, fails the test. Beyond that: no message is logged
without its headers, no U+FFFD appears where the source held valid UTF-8, and no literal
escape sequence appears in a subject or name.

A workspace logs a `Message-ID` once, and the suites reuse ids, so the corpus is spread over a
few mailboxes (each in a workspace of its own) such that no mailbox holds an id twice.
"""

import re
from collections import Counter, defaultdict
from datetime import UTC
from typing import Any

import httpx
import pytest
from imapclient import IMAPClient
from pymongo.asynchronous.database import AsyncDatabase

from mailsync_ingest.headers import MessageContext, mail_message
from mailsync_ingest.limits import Limits, inspect_message
from mailsync_shared.storage.client import Document
from tests.support.infra import Infra
from tests.support.mail import MailAccount, create_account, mailbox_connection
from tests.support.polling import eventually
from tests.support.real_world_mail import (
    CorpusMessage,
    agrees,
    corpus,
    deliver_raw,
    dovecot_reading,
    has_body_text,
    logged_reading,
    stalwart_reading,
    text,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


NO_DOMAIN = "a local part without a domain is no address; Dovecot shows a `missing_domain` one"
NO_ADDRESS = (
    "no address in the entry (`<>`, a group name, an encoded word); Dovecot shows a placeholder"
)
NAME_WITH_AT = "a display name holding `@` is a name, not an address (RFC 5322 name-addr)"
TWO_BARE = "two bare addresses without a comma: both are kept; Dovecot keeps the first"
FIRST_SUBJECT = "two Subject headers: the first is kept; Dovecot shows the last"
STRAY_LINE = "a stray line inside the header block is skipped and the header continues after it"
CP1252 = "raw 8-bit bytes that are not UTF-8 are read as cp1252; the stdlib leaves U+FFFD"
CHARSET = (
    "a charset the stdlib's email.header cannot read (GBK text labelled GB2312, ISO-8859-8-I, "
    "Microsoft's ISO-2022-JP): read here, the stdlib leaves the encoded word"
)
CFWS_ID = "a Message-ID with spaces and comments inside is not one; a stable id is made"
WEAK_ID = "a Message-ID `12223` without brackets or `@` cannot tell messages apart; a stable id"
BROKEN_DATE = (
    "of two Date headers the first is cut short: stalwart reads what is left of it, Mailsync "
    "(like Dovecot) the first readable one"
)
BODY_RFC822 = "the only text is inside an attached message/rfc822: not the message's own body"
BODY_LENIENT = (
    "the stdlib finds no text part (illegal boundary, bad charset, parts it rejects); "
    "the body is read leniently"
)

DISAGREEMENTS: dict[str, dict[str, str]] = {
    "cpython-test-email/msg_05.txt": {"dovecot:from": NO_DOMAIN, "dovecot:to": NO_DOMAIN},
    "cpython-test-email/msg_15.txt": {"dovecot:to": NO_DOMAIN},
    "cpython-test-email/msg_43.txt": {"dovecot:from": NO_ADDRESS},
    "mikel-mail/attachment_emails__attachment_message_rfc822_inline_image.eml": {
        "stdlib:body": BODY_RFC822
    },
    "mikel-mail/error_emails__invalid_subject_characters.eml": {"dovecot:subject": CP1252},
    "mikel-mail/error_emails__missing_body.eml": {"dovecot:to": NO_ADDRESS},
    "mikel-mail/error_emails__weird_to_header.eml": {"dovecot:to": NO_ADDRESS},
    "mikel-mail/mime_emails__raw_email11.eml": {"dovecot:to": NO_DOMAIN},
    "mikel-mail/mime_emails__raw_email_with_binary_encoded.eml": {"dovecot:subject": FIRST_SUBJECT},
    "mikel-mail/mime_emails__raw_email_with_illegal_boundary.eml": {"stdlib:body": BODY_LENIENT},
    "mikel-mail/mime_emails__raw_email_with_multipart_mixed_quoted_boundary.eml": {
        "dovecot:subject": FIRST_SUBJECT
    },
    "mikel-mail/plain_emails__mix_caps_content_type.eml": {"dovecot:from": STRAY_LINE},
    "mikel-mail/plain_emails__raw_email10.eml": {"stdlib:body": BODY_LENIENT},
    "mikel-mail/plain_emails__raw_email_bad_time.eml": {"stdlib:body": BODY_LENIENT},
    "mikel-mail/plain_emails__raw_email_multiple_from.eml": {"dovecot:to": TWO_BARE},
    "mikel-mail/plain_emails__raw_email_with_at_display_name.eml": {"dovecot:to": NAME_WITH_AT},
    "mikel-mail/rfc2822__example11.eml": {"dovecot:to": NO_ADDRESS},
    "mikel-mail/rfc2822__example13.eml": {"dovecot:to": STRAY_LINE, "dovecot:message_id": CFWS_ID},
    "mimekit/issue358.txt": {"dovecot:from": NAME_WITH_AT},
    "mimekit/stack-overflow.txt": {"dovecot:to": NO_ADDRESS},
    "php-mime-mail-parser/issue116": {"dovecot:subject": CHARSET},
    "php-mime-mail-parser/issue149": {"dovecot:subject": CHARSET},
    "php-mime-mail-parser/issue230": {"stdlib:body": BODY_LENIENT},
    "spamscope-mail-parser/mail_test_19": {
        "dovecot:from": NAME_WITH_AT,
        "dovecot:cc": NAME_WITH_AT,
    },
    "spamscope-mail-parser/mail_test_9": {"dovecot:subject": CHARSET},
    "stalwart-mail-parser/malformed__019.eml": {"stalwart:date": BROKEN_DATE},
    "stalwart-mail-parser/rfc__001.eml": {"dovecot:from": NO_DOMAIN, "dovecot:to": NO_DOMAIN},
    "stalwart-mail-parser/rfc__004.eml": {"dovecot:from": NO_DOMAIN, "dovecot:to": NO_DOMAIN},
    "stalwart-mail-parser/thirdparty__007.eml": {
        "dovecot:from": NO_DOMAIN,
        "stalwart:from": NO_DOMAIN,
    },
    "zbateson-mail-mime-parser/github-102-01.txt": {"dovecot:subject": CP1252},
    "zbateson-mail-mime-parser/github-102-02.txt": {"dovecot:subject": CP1252},
    "zbateson-mail-mime-parser/invalid-charset.txt": {"stdlib:body": BODY_LENIENT},
    "zbateson-mail-mime-parser/m4001.txt": {"dovecot:subject": CP1252},
    "zbateson-mail-mime-parser/m4009.txt": {"dovecot:message_id": WEAK_ID},
}

_ESCAPE = re.compile(r"\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}")
_REPLACEMENT = "\ufffd"


def message_id_of(message: CorpusMessage) -> str:
    """The id the workspace will log the message under (to keep one mailbox free of repeats)."""
    inspection = inspect_message(message.data, Limits())
    return mail_message(
        inspection.header_block,
        context=MessageContext("setup", "setup@corpus.test"),
        raw_id="setup",
        size=len(message.data),
        body=inspection.data[len(inspection.header_block) :],
    ).message_id


def rounds(messages: list[CorpusMessage]) -> list[list[CorpusMessage]]:
    """The messages spread over as few mailboxes as keep every `Message-ID` once per mailbox."""
    spread: list[list[CorpusMessage]] = []
    used: list[set[str]] = []
    for message in messages:
        wanted = message_id_of(message)
        index = next((i for i, ids in enumerate(used) if wanted not in ids), len(spread))
        if index == len(spread):
            spread.append([])
            used.append(set())
        spread[index].append(message)
        used[index].add(wanted)
    return spread


def header_block(data: bytes) -> bytes:
    end = re.search(rb"\r?\n\r?\n", data)
    return data if end is None else data[: end.start()]


def texts(document: dict[str, Any]) -> list[str]:
    people = [document.get("from"), *(document.get("to") or []), *(document.get("cc") or [])]
    return [document.get("subject") or "", *(p.get("name") or "" for p in people if p)]


async def connect(
    api: httpx.AsyncClient, infra: Infra, account: MailAccount
) -> tuple[str, dict[str, str]]:
    workspace = (await api.post("/v1/workspaces", json={"name": account.address})).json()
    auth = {"Authorization": f"Bearer {workspace['api_key']}"}
    connected = await api.post(
        "/v1/mailboxes",
        headers=auth,
        json=mailbox_connection(infra, account, sync={"backfill_days": 30}),
    )
    assert connected.status_code == 201, connected.text
    mailbox_id: str = connected.json()["id"]
    return mailbox_id, auth


def envelopes(infra: Infra, account: MailAccount) -> dict[int, dict[bytes, Any]]:
    client = IMAPClient(infra.imap_host, port=infra.imap_port, ssl=False)
    try:
        client.normalise_times = False
        client.login(account.address, account.password)
        client.select_folder("INBOX", readonly=True)
        uids = client.search("ALL")
        fetched: dict[int, dict[bytes, Any]] = client.fetch(uids, ["ENVELOPE", "INTERNALDATE"])
        return fetched
    finally:
        client.logout()


async def test_real_world_mail_is_logged_as_dovecot_and_the_suites_read_it(
    api_url: str,
    infra: Infra,
    mongo: AsyncDatabase[Document],
) -> None:
    messages = corpus()
    assert len(messages) >= 300
    spread = rounds(messages)
    accounts = [create_account(infra, "corpus.test", f"reader{i}") for i in range(len(spread))]
    for account, batch in zip(accounts, spread, strict=True):
        for message in batch:  # one at a time: UIDs follow the order of delivery
            deliver_raw(infra, account.address, message.data)
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as api:
        mailboxes = [await connect(api, infra, account) for account in accounts]
        mailbox_ids = [mailbox_id for mailbox_id, _ in mailboxes]

        async def all_logged() -> bool:
            for mailbox_id, batch in zip(mailbox_ids, spread, strict=True):
                query = {"sources.mailbox_id": mailbox_id}
                uids = {
                    source["uid"]
                    for document in await mongo["messages"].find(query, {"sources": 1}).to_list()
                    for source in document["sources"]
                    if source["mailbox_id"] == mailbox_id
                }
                if len(uids) < len(batch):
                    return False
            return True

        await eventually(all_logged, what="every message logged", timeout=600, interval=2)
        statuses = [await reconciled(api, mailbox) for mailbox in mailboxes]

    disagreements: dict[str, dict[str, str]] = defaultdict(dict)
    replacement_chars: list[str] = []
    escapes: list[str] = []
    defects: Counter[str] = Counter()
    for account, mailbox_id, batch in zip(accounts, mailbox_ids, spread, strict=True):
        fetched = envelopes(infra, account)
        logged = {
            source["uid"]: document
            for document in await mongo["messages"]
            .find({"sources.mailbox_id": mailbox_id})
            .to_list()
            for source in document["sources"]
            if source["mailbox_id"] == mailbox_id
        }
        for uid, message in zip(sorted(fetched), batch, strict=True):
            document = logged[uid]
            internal = fetched[uid][b"INTERNALDATE"]
            internal_date = (
                internal.replace(tzinfo=UTC) if internal.tzinfo is None else internal
            ).astimezone(UTC)
            ours = logged_reading(document).fields()
            found = document.get("defects") or []
            defects.update(found)
            assert "headers_unreadable" not in found, message.name
            readings = {"dovecot": dovecot_reading(fetched[uid][b"ENVELOPE"]).fields()}
            expected_file = message.expected_file()
            if expected_file is not None:
                readings["stalwart"] = stalwart_reading(expected_file).fields()
            for reader, theirs in readings.items():
                for name, value in ours.items():
                    if not agrees(
                        name, value, theirs[name], internal_date=internal_date, defects=found
                    ):
                        disagreements[message.name][f"{reader}:{name}"] = (
                            f"logged {value!r}, {reader} {theirs[name]!r}"
                        )
            if bool(text(document.get("body_text"))) != has_body_text(message.data):
                disagreements[message.name]["stdlib:body"] = "body text present differs"
            source_block = header_block(message.data)
            for value in texts(document):
                if _REPLACEMENT in value and b"\xef\xbf\xbd" not in source_block:
                    try:
                        source_block.decode("utf-8")
                    except UnicodeDecodeError:
                        continue  # the source itself was not valid UTF-8
                    replacement_chars.append(f"{message.name}: {value!r}")
                if _ESCAPE.search(value) and not _ESCAPE.search(source_block.decode("latin-1")):
                    escapes.append(f"{message.name}: {value!r}")

    unexplained = {
        name: {key: why for key, why in found.items() if key not in DISAGREEMENTS.get(name, {})}
        for name, found in disagreements.items()
    }
    assert {name: found for name, found in unexplained.items() if found} == {}
    gone = {
        name: sorted(set(listed) - set(disagreements.get(name, {})))
        for name, listed in DISAGREEMENTS.items()
    }
    assert {name: keys for name, keys in gone.items() if keys} == {}, "listed but agreeing now"
    assert replacement_chars == []
    assert escapes == []
    assert defects["charset_replaced"] >= 4  # the cp1252 readings above are on the record
    counted: Counter[str] = Counter()
    for status in statuses:
        assert status["gaps"] == []
        assert status["unstored_total"] == 0
        counted.update(status["defects"])
    assert counted == defects


async def reconciled(api: httpx.AsyncClient, mailbox: tuple[str, dict[str, str]]) -> dict[str, Any]:
    """Ask for a reconciliation and return the mailbox's status once it is answered."""
    mailbox_id, auth = mailbox
    asked = await api.post(f"/v1/mailboxes/{mailbox_id}/reconcile", headers=auth)
    assert asked.status_code == 202, asked.text

    async def answered() -> dict[str, Any] | None:
        status: dict[str, Any] = (
            await api.get(f"/v1/mailboxes/{mailbox_id}", headers=auth)
        ).json()["status"]
        done = status["reconcile_requested_at"] is None and status["reconciled_at"] is not None
        return status if done else None

    return await eventually(answered, what="the reconciliation asked for", timeout=120)
